"""Evaluation files without gold (XTREME's download strips test labels, or sets them to a placeholder)
are predicted, never scored: the run says which file in one line, results.json records it, the score
is missing (not an average over fewer languages) and the report shows the cell as missing."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from stilts.report.load import load_runs, tidy
from stilts.tasks import get_task
from stilts.heads import head_of
from stilts.heads.base import PLACEHOLDER_MIN_EXAMPLES
from stilts.tasks.common.sources import SAMPLES_ROOT
from tests.cli import stilts


def _pairs(labels):
    return [{"id": str(i), "text_a": "a", "text_b": "b", "label": label} for i, label in enumerate(labels)]


def test_the_rule() -> None:
    xnli, udpos, tydiqa, xcopa = (get_task(name) for name in ("xnli", "udpos", "tydiqa", "xcopa"))
    many = PLACEHOLDER_MIN_EXAMPLES
    assert head_of(xnli).missing_gold(xnli, _pairs([None] * 3)) == "no gold labels"  # XTREME's two-column test files
    assert "every gold label is 'contradiction' (a placeholder)" in head_of(xnli).missing_gold(xnli, _pairs(["contradiction"] * many))
    assert head_of(xnli).missing_gold(xnli, _pairs(["contradiction"] * (many - 1))) is None  # a tiny real sample is scored
    assert head_of(xnli).missing_gold(xnli, _pairs(["contradiction", "neutral"] * many)) is None
    choices = [{"id": str(i), "context": "c", "choices": ["a", "b"], "label": 0} for i in range(many)]
    assert "every gold label is 0" in head_of(xcopa).missing_gold(xcopa, choices)  # XTREME's XCOPA test files
    sentences = [{"id": str(i), "tokens": ["a", "b"], "tags": None} for i in range(3)]
    assert head_of(udpos).missing_gold(udpos, sentences) == "no gold tags"
    sentences = [{"id": str(i), "tokens": ["a", "b"], "tags": ["NOUN", "NOUN"]} for i in range(many)]
    assert "every gold tag is 'NOUN'" in head_of(udpos).missing_gold(udpos, sentences)
    stripped = [{"id": "q", "context": "c", "question": "q?", "answers": {"text": [""], "answer_start": [0]}}]
    assert "no gold answers" in head_of(tydiqa).missing_gold(tydiqa, stripped)
    stripped[0]["answers"] = {"text": ["c"], "answer_start": [0]}
    assert head_of(tydiqa).missing_gold(tydiqa, stripped) is None


@pytest.mark.slow
def test_a_run_predicts_but_does_not_score_an_unlabelled_test_file(tmp_path, stilts_cache) -> None:
    root = tmp_path / "data"
    shutil.copytree(SAMPLES_ROOT, root)
    test_de = root / "xnli" / "test-de.tsv"
    lines = test_de.read_text(encoding="utf-8").splitlines()
    test_de.write_text("".join("\t".join(line.split("\t")[:2]) + "\n" for line in lines), encoding="utf-8")
    run = stilts("target=xnli", "experiment=quickstart", f"data.root={root}", "target.languages=[de,fr]",
                 "trainer.enable_progress_bar=false", cache=stilts_cache, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"de: not scored: {test_de}: no gold labels" in run.stdout
    assert "XTREME score (xnli): - (not every language was scored)" in run.stdout
    logged = (run.stdout + run.stderr).splitlines()  # Hydra's log goes to stdout
    assert sum("no gold labels" in line and "target.eval_split=dev" in line for line in logged) == 1
    [results_path] = (tmp_path / "outputs" / "runs" / "xnli").rglob("results.json")
    results = json.loads(results_path.read_text())
    assert results["metrics"]["de"] == {} and "accuracy" in results["metrics"]["fr"]
    assert results["no_gold"] == {"de": f"{test_de}: no gold labels"}
    assert results["score"] is None and list(results["scores"]) == ["fr"] and results["average"] == {}
    predictions = (results_path.parent / "predictions" / "test-de.tsv").read_text().splitlines()
    assert len(predictions) == len(lines) and set(predictions) <= set(get_task("xnli").labels)
    cells = tidy(load_runs(results_path.parent)).set_index(["language", "metric"])["value"]
    assert math.isnan(cells[("de", "score")]) and math.isnan(cells[("average", "score")])
    assert not math.isnan(cells[("fr", "score")])
