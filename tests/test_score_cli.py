"""`python -m stilts.score`: official numbers on real files, and one-line errors (exit 2) on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stilts.cli.score import main

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
UDPOS_DE = "udpos_xtreme_format/dev-de.tsv"


def _data_file(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"real data slice {path} is absent (it lives next to the repo, not in it)")
    return path


def _score(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, dict | None, str]:
    """Exit code, the printed metrics (None when nothing was printed) and stderr of an in-process run."""
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def _cli(*argv: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stilts.score", *map(str, argv)], capture_output=True, text=True, timeout=300
    )


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _xnli_gold_labels() -> tuple[Path, list[str]]:
    gold = _data_file("xnli/dev-de.tsv")
    return gold, [line.split("\t")[2] for line in gold.read_text(encoding="utf-8").splitlines()]


def _tsv_sentences(path: Path) -> list[list[tuple[str, str]]]:
    """(token, tag) sentences of an XTREME tagging tsv, to build predictions from."""
    blocks = path.read_text(encoding="utf-8").split("\n\n")
    return [[tuple(line.split("\t")) for line in block.splitlines()] for block in blocks if block.strip()]


def _write_tag_predictions(path: Path, sentences: list[list[str]]) -> Path:
    """XTREME's tag prediction file: one tag per line, a blank line between sentences."""
    return _write_lines(path, ["\n".join(tags) + "\n" for tags in sentences])


# --- span QA ----------------------------------------------------------------------------------------


def test_squad_v2_subset_matches_the_official_script_through_the_real_cli() -> None:
    folder = _data_file("squad_v2_subset")
    result = _cli("squad", folder / "dev-v2.0.Normans_Rhine.json", folder / "pred.BERT_single_GoogleAI.v2.0.json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert round(metrics["exact"], 2) == 78.05
    assert round(metrics["f1"], 2) == 81.22
    assert (metrics["HasAns_total"], metrics["NoAns_total"]) == (386, 320)
    # The prediction file covers all of SQuAD dev: the extra ids are ignored, with a warning.
    assert "not in" in result.stderr and "ignored" in result.stderr


def test_squad_v2_na_prob_file_adds_the_best_thresholds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The official script's --na-prob-file path on a hand-computed case (see test_eval_qa)."""
    context = "Paris Rome x"

    def qa(qid: str, answer: str | None) -> dict:
        answers = [{"text": answer, "answer_start": context.index(answer)}] if answer else []
        return {"id": qid, "question": "?", "answers": answers, "is_impossible": answer is None}
    gold = tmp_path / "dev-v2.0.json"
    gold.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [qa("q1", "Paris"), qa("q2", "Rome"), qa("q3", None), qa("q4", None)]}]}]}))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"q1": "Paris", "q2": "Berlin", "q3": "x", "q4": ""}))
    odds = tmp_path / "null_odds.json"
    odds.write_text(json.dumps({"q1": 0.1, "q2": 0.9, "q3": 0.8, "q4": 0.2}))
    code, metrics, err = _score(capsys, "squad", gold, pred, "--na-prob-file", odds)
    assert code == 0, err
    assert metrics["exact"] == 50.0 and metrics["best_exact"] == 75.0 and metrics["best_exact_thresh"] == 0.1
    odds.write_text(json.dumps({"q1": 0.1}))
    code, metrics, err = _score(capsys, "squad", gold, pred, "--na-prob-file", odds)
    assert code == 2 and err.startswith("error: ") and "3 questions have no odds" in err
    gold_xnli, labels = _xnli_gold_labels()
    code, _, err = _score(capsys, "xnli", gold_xnli, _write_lines(tmp_path / "p.tsv", labels), "--na-prob-file", odds)
    assert code == 2 and "--na-prob-file is for tasks with unanswerable questions" in err


def test_tydiqa_uses_v1_rules_and_matches_xtreme_on_xquad_en(capsys: pytest.CaptureFixture[str]) -> None:
    gold = _data_file("xquad/xquad.en.json")
    pred = _data_file("squad_v1_predictions/pred.BERT_ensemble_GoogleAI.v1.1.json")
    code, metrics, _ = _score(capsys, "tydiqa", gold, pred, "--lang", "en")
    assert code == 0
    assert set(metrics) == {"exact_match", "f1", "lang"}
    assert round(metrics["exact_match"], 3) == 74.874
    assert round(metrics["f1"], 3) == 86.325
    assert metrics["lang"] == "en"


def test_qa_question_without_prediction_scores_zero_with_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gold = _data_file("xquad/xquad.en.json")
    complete_pred = _data_file("squad_v1_predictions/pred.BERT_ensemble_GoogleAI.v1.1.json")
    _, complete, _ = _score(capsys, "tydiqa", gold, complete_pred)
    full = json.loads(complete_pred.read_text(encoding="utf-8"))
    dropped = json.loads(gold.read_text(encoding="utf-8"))["data"][0]["paragraphs"][0]["qas"][0]["id"]
    del full[dropped]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(full), encoding="utf-8")
    code, metrics, err = _score(capsys, "tydiqa", gold, pred)
    assert code == 0
    assert "1 of 1190 questions have no prediction" in err
    assert metrics["f1"] < complete["f1"]


def test_malformed_prediction_json_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pred = tmp_path / "pred.json"
    pred.write_text('{"56be4db0acb8001400a502ec": "Denver Broncos",', encoding="utf-8")
    code, metrics, err = _score(capsys, "tydiqa", _data_file("xquad/xquad.en.json"), pred)
    assert (code, metrics) == (2, None)
    assert err.startswith(f"error: {pred}:1: invalid JSON") and err.count("\n") == 1


# --- classification -------------------------------------------------------------------------------


def test_xnli_gold_labels_as_predictions_score_100(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gold, labels = _xnli_gold_labels()
    code, metrics, _ = _score(capsys, "xnli", gold, _write_lines(tmp_path / "pred.txt", labels), "--lang", "de")
    assert code == 0
    assert metrics == {"accuracy": 100.0, "lang": "de"}


def test_xnli_accuracy_counts_flipped_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gold, labels = _xnli_gold_labels()
    flip = {"entailment": "neutral", "neutral": "contradiction", "contradiction": "entailment"}
    wrong = 249
    predictions = [flip[label] if i % 10 == 3 else label for i, label in enumerate(labels)]
    assert sum(p != g for p, g in zip(predictions, labels)) == wrong
    code, metrics, _ = _score(capsys, "xnli", gold, _write_lines(tmp_path / "pred.txt", predictions))
    assert code == 0
    assert metrics["accuracy"] == pytest.approx(100 * (2490 - wrong) / 2490)


def test_xnli_unknown_label_names_the_prediction_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gold, labels = _xnli_gold_labels()
    labels[6] = "maybe"
    pred = _write_lines(tmp_path / "pred.txt", labels)
    code, metrics, err = _score(capsys, "xnli", gold, pred)
    assert (code, metrics) == (2, None)
    assert f"{pred}:7:" in err and "'maybe'" in err


def test_xnli_wrong_line_count_names_both_counts_through_the_real_cli(tmp_path: Path) -> None:
    gold, labels = _xnli_gold_labels()
    result = _cli("xnli", gold, _write_lines(tmp_path / "pred.txt", labels[:-5]))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and "2485" in result.stderr and "2490" in result.stderr
    assert "Traceback" not in result.stderr


def test_mnli_reads_its_header_tsv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gold = _data_file("mnli/dev_matched.first51.tsv")
    rows = [line.split("\t") for line in gold.read_text(encoding="utf-8").splitlines()]
    column = rows[0].index("gold_label")
    pred = _write_lines(tmp_path / "pred.txt", [row[column] for row in rows[1:]])
    code, metrics, _ = _score(capsys, "mnli", gold, pred)
    assert (code, metrics) == (0, {"accuracy": 100.0})


# --- multiple choice --------------------------------------------------------------------------------


def test_hellaswag_scores_choice_indices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = [{"ind": i, "ctx": f"context {i}", "endings": ["a", "b", "c", "d"], "label": i % 4} for i in range(4)]
    gold = _write_lines(tmp_path / "gold.jsonl", [json.dumps(row) for row in rows])
    code, metrics, _ = _score(capsys, "hellaswag", gold, _write_lines(tmp_path / "pred.txt", ["0", "1", "2", "0"]))
    assert (code, metrics) == (0, {"accuracy": 75.0})
    pred = _write_lines(tmp_path / "bad.txt", ["0", "1", "4", "3"])
    code, _, err = _score(capsys, "hellaswag", gold, pred)
    assert code == 2 and f"{pred}:3:" in err


# --- tagging ----------------------------------------------------------------------------------------


def test_udpos_gold_file_as_predictions_scores_100(capsys: pytest.CaptureFixture[str]) -> None:
    # The gold tsv itself is a valid `token<TAB>tag` prediction file (its last column is taken).
    gold = _data_file(UDPOS_DE)
    code, metrics, _ = _score(capsys, "udpos", gold, gold, "--lang", "de")
    assert code == 0
    assert (metrics["f1"], metrics["accuracy"]) == (100.0, 100.0)


def test_udpos_accuracy_counts_changed_tags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # A slice of the real file (first 300 sentences) keeps this fast; seqeval over all of it takes seconds.
    sentences = _tsv_sentences(_data_file(UDPOS_DE))[:300]
    gold = _write_lines(tmp_path / "gold.tsv", ["\n".join("\t".join(pair) for pair in s) + "\n" for s in sentences])
    predictions = [[tag for _, tag in sentence] for sentence in sentences]
    changed = 0
    for tags in predictions[::7]:
        tags[0] = "X" if tags[0] != "X" else "NOUN"
        changed += 1
    total = sum(len(tags) for tags in predictions)
    code, metrics, _ = _score(capsys, "udpos", gold, _write_tag_predictions(tmp_path / "pred.txt", predictions))
    assert code == 0
    assert metrics["accuracy"] == pytest.approx(100 * (total - changed) / total)
    assert metrics["f1"] < 100


def test_udpos_sentence_length_mismatch_names_the_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gold = _data_file(UDPOS_DE)
    predictions = [[tag for _, tag in sentence] for sentence in _tsv_sentences(gold)]
    predictions[2].pop()
    start_line = len(predictions[0]) + len(predictions[1]) + 3  # two sentences, each followed by a blank line
    pred = _write_tag_predictions(tmp_path / "pred.txt", predictions)
    code, metrics, err = _score(capsys, "udpos", gold, pred)
    assert (code, metrics) == (2, None)
    assert f"{pred}:{start_line}: sentence 3 " in err


def test_udpos_missing_sentence_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gold = _data_file(UDPOS_DE)
    predictions = [[tag for _, tag in sentence] for sentence in _tsv_sentences(gold)]
    code, _, err = _score(capsys, "udpos", gold, _write_tag_predictions(tmp_path / "pred.txt", predictions[:-1]))
    assert code == 2 and f"sentence {len(predictions)} is missing" in err


# --- usage errors -----------------------------------------------------------------------------------


def test_unknown_task_lists_the_valid_ones_through_the_real_cli(tmp_path: Path) -> None:
    result = _cli("xnlii", tmp_path / "gold.tsv", tmp_path / "pred.txt")
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown task 'xnlii'") and "xnli" in result.stderr.split("valid")[1]
    assert "Traceback" not in result.stderr


def test_missing_prediction_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gold, _ = _xnli_gold_labels()
    missing = tmp_path / "nowhere.txt"
    code, metrics, err = _score(capsys, "xnli", gold, missing)
    assert (code, metrics) == (2, None)
    assert err.startswith(f"error: {missing}") and err.count("\n") == 1
