"""`python -m stilts.prepare`: every piece a command would read is fetched and checked before it runs;
missing, malformed and unreachable pieces are named and make it exit 1 (the Hub is unreachable here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stilts.cli.prepare import prepare
from stilts.tasks.common.sources import SAMPLES_ROOT
from tests.cli import stilts


@pytest.fixture
def samples(tmp_path) -> Path:
    """A copy of the shipped samples to break."""
    root = tmp_path / "data"
    shutil.copytree(SAMPLES_ROOT, root)
    return root


def _run(capsys, *overrides: str, multirun: bool = False, report: Path) -> tuple[int, str, str, dict]:
    code = prepare(list(overrides), multirun, str(report))
    out, err = capsys.readouterr()
    return code, out, err, json.loads(report.read_text())


@pytest.mark.slow
def test_the_quickstart_paper_grid_is_all_there(tmp_path, capsys, stilts_cache, monkeypatch) -> None:
    monkeypatch.setenv("STILTS_CACHE", str(stilts_cache))
    # One seed of the grid: the others need the same data (each run is composed, as Hydra's sweeper does).
    code, out, err, report = _run(capsys, "experiment=paper_grid_quickstart", "seed=1", multirun=True,
                                  report=tmp_path / "prepare.json")
    assert code == 0, err[-2000:]
    assert report["runs"] == 99 and report["ok"]  # 11 setups x 9 targets
    table = {(row["task"], row["split"]): row for row in report["table"]}
    # every target's evaluation languages, every intermediate task's train and dev, the model
    assert set(table[("xnli", "test")]["languages"].split()) == {"ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru",
                                                                  "sw", "th", "tr", "ur", "vi", "zh"}
    assert {task for task, split in table if split == "train"} >= {"squad", "mnli", "anli_plus", "qqp", "hellaswag",
                                                                    "cosmosqa", "commonsenseqa", "socialiqa", "ccg"}
    assert ("bucc", "dev") in table and ("tatoeba", "test") in table and table[("model", "-")]["status"] == "ok"
    assert all(row["status"] == "ok" for row in report["table"])
    assert table[("mnli", "train")]["rows"] == 96 and table[("mnli", "train")]["size"] > 0
    assert "xnli" in out and "status" in out.splitlines()[0]


def test_a_missing_and_a_malformed_file_are_named_and_exit_1(samples, tmp_path, capsys) -> None:
    (samples / "xnli" / "test-de.tsv").unlink()
    (samples / "MNLI" / "dev_matched.tsv").write_text("no header here\n", encoding="utf-8")
    code, out, err, report = _run(capsys, "+intermediate=none,mnli", "target=xnli,pawsx", "experiment=quickstart",
                                  f"data.root={samples}", multirun=True, report=tmp_path / "prepare.json")
    assert code == 1 and not report["ok"]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert any("xnli test/de: missing" in line and str(samples / "xnli" / "test-de.tsv") in line for line in errors)
    assert any("mnli dev/en: malformed" in line and str(samples / "MNLI" / "dev_matched.tsv") in line for line in errors)
    assert errors[-1].startswith("error: 2 of ")
    statuses = {(piece["task"], piece["split"], piece["language"]): piece["status"] for piece in report["pieces"]}
    assert statuses[("xnli", "test", "de")] == "missing" and statuses[("mnli", "dev", "en")] == "malformed"
    assert statuses[("pawsx", "test", "de")] == "ok" and statuses[("xnli", "test", "fr")] == "ok"
    assert "Traceback" not in err


def test_unlabelled_evaluation_files_are_a_warning_training_files_an_error(samples, tmp_path, capsys) -> None:
    xcopa = samples / "xcopa"
    rows = [json.loads(line) for line in (xcopa / "test.et.jsonl").read_text().splitlines()]
    rows = (rows * 5)[:25]  # XTREME's download sets every XCOPA test label to 0
    (xcopa / "test.et.jsonl").write_text("".join(json.dumps(dict(row, label=0)) + "\n" for row in rows))
    code, _, err, report = _run(capsys, "target=xcopa", "experiment=quickstart", f"data.root={samples}",
                                "target.languages=[et,ht]", report=tmp_path / "prepare.json")
    assert code == 0, err
    statuses = {(p["task"], p["split"], p["language"]): p for p in report["pieces"]}
    assert statuses[("xcopa", "test", "et")]["status"] == "no gold"
    assert "every gold label is 0 (a placeholder)" in statuses[("xcopa", "test", "et")]["message"]
    assert "warning: xcopa test/et" in err and "target.eval_split=dev" in err

    (samples / "pawsx" / "dev-en.tsv").write_text("a\tb\n" * 3, encoding="utf-8")  # a dev file without labels
    code, _, err, _ = _run(capsys, "target=pawsx", "experiment=quickstart", f"data.root={samples}",
                           report=tmp_path / "again.json")
    assert code == 1 and "pawsx dev/en: malformed" in err and "no gold labels" in err


@pytest.mark.cli
def test_hub_sources_offline_are_each_unreachable_in_one_line(tmp_path, stilts_cache) -> None:
    run = stilts("+intermediate=socialiqa", "target=mlqa", "model=tiny", "target.languages=[de]",
                 f"paths.output_dir={tmp_path / 'outputs'}", module="stilts.prepare", cache=stilts_cache, cwd=tmp_path,
                 env={"HF_DATASETS_OFFLINE": "1"}, timeout=300)
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 6  # five pieces, one closing line
    for source in ("lighteval/siqa@54c6a1f8cb train", "lighteval/siqa@54c6a1f8cb validation",
                   "google/xtreme (MLQA.de.de) test", "google/xtreme (MLQA.en.en) validation", "rajpurkar/squad train"):
        assert sum(source in line and ": unreachable:" in line for line in errors) == 1, source
    assert "Traceback" not in run.stderr
    assert "unreachable" in run.stdout and (tmp_path / "outputs" / "prepare.json").exists()


@pytest.mark.cli
def test_bad_input_is_one_error_line(tmp_path, stilts_cache) -> None:
    for arguments, expected in ((["target=bogus", "experiment=quickstart"], "Could not find 'target/bogus'"),
                                (["target=xnli,pawsx", "experiment=quickstart"], "Ambiguous value"),
                                (["target=xnli", "experiment=quickstart", "seed=x"], "seed")):
        run = stilts(*arguments, module="stilts.prepare", cache=stilts_cache, cwd=tmp_path, timeout=120)
        assert run.returncode == 2, (arguments, run.stderr)
        assert run.stderr.count("error:") == 1 and expected in run.stderr and "Traceback" not in run.stderr
