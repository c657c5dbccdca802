"""The real CLI in subprocesses: the quickstart, a 4-run sweep, 2-process DDP, W&B offline, bad input."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from stilts.tasks import get_task
from tests.cli import REPO, TYDIQA_LANGUAGES, check_results_schema, expect_exact_retraining, run_folder, stilts


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def quickstart(workspace, stilts_cache) -> subprocess.CompletedProcess:
    return stilts("+intermediate=squad", "target=tydiqa", "experiment=quickstart", cache=stilts_cache, cwd=workspace)


@pytest.mark.slow
def test_quickstart_runs_the_three_phases(quickstart, workspace) -> None:
    assert quickstart.returncode == 0, quickstart.stderr[-3000:]
    run = run_folder(workspace / "outputs" / "runs", "tydiqa", "squad")
    results = json.loads((run / "results.json").read_text())
    check_results_schema(results, "tydiqa", ["squad"], TYDIQA_LANGUAGES)
    assert {"exact_match", "f1"} <= set(results["metrics"]["sw"])
    assert {"exact", "f1", "HasAns_exact"} <= set(results["intermediate_metrics"]["squad"])
    # The printed table names every language and the XTREME score.
    for language in TYDIQA_LANGUAGES:
        assert f"\n{language} " in quickstart.stdout
    assert "XTREME score (tydiqa)" in quickstart.stdout
    # Composed config, one folder per stage with its head; the intermediate stage keeps its encoder
    # as safetensors, the evaluated target stage drops its own (stage.json says so and vouches for the rest).
    assert (run / ".hydra" / "config.yaml").exists()
    for stage in ("1-squad", "2-tydiqa"):
        folder = run / "stages" / stage
        assert (folder / "encoder" / "model.safetensors").exists() == (stage == "1-squad")
        assert (folder / "heads" / f"{stage.split('-', 1)[1]}.safetensors").exists()
        summary = json.loads((folder / "stage.json").read_text())
        assert 0.0 < summary["train_real_token_fraction"] <= 1.0
        assert ("encoder_dropped" in summary) == (stage == "2-tydiqa")
        assert any(name.startswith("encoder/") for name in summary["files"]) == (stage == "1-squad")
    dropped = json.loads((run / "stages" / "2-tydiqa" / "stage.json").read_text())["encoder_dropped"]
    assert "encoder/model.safetensors" in dropped["files"]
    # What the run added to the store: both stages, as they are now.
    assert results["store_bytes_added"] == sum(facts["bytes"] for facts in results["stages"].values()) > 0
    # The target stage started from the intermediate stage's encoder.
    target = json.loads((run / "stages" / "2-tydiqa" / "stage.json").read_text())
    assert target["encoder_source"].endswith(str(Path("stages") / (run / "stages" / "1-squad").resolve().name / "encoder"))
    assert (run / "logs" / "1-squad" / "metrics.csv").exists()


@pytest.mark.slow
def test_rerun_skips_a_finished_run(quickstart, workspace, stilts_cache) -> None:
    assert quickstart.returncode == 0
    results = run_folder(workspace / "outputs" / "runs", "tydiqa", "squad") / "results.json"
    before = results.read_text()
    again = stilts("+intermediate=squad", "target=tydiqa", "experiment=quickstart", cache=stilts_cache, cwd=workspace)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipping this run" in again.stderr + again.stdout
    assert results.read_text() == before
    assert "XTREME score (tydiqa)" in again.stdout


@pytest.mark.slow
def test_the_readmes_xtreme_score_command_finds_the_quickstart_run(quickstart, workspace, stilts_cache) -> None:
    """The README's `stilts.score xtreme <glob>` line, its glob expanded as a shell would, from the
    folder the quickstart ran in."""
    [line] = [line for line in (REPO / "README.md").read_text().splitlines()
              if line.startswith("python -m stilts.score xtreme ")]
    pattern = line.split()[4]
    found = sorted(str(path.relative_to(workspace)) for path in workspace.glob(pattern))
    assert len(found) == 1, (pattern, found)
    scored = stilts("xtreme", *found, module="stilts.score", cache=stilts_cache, cwd=workspace, timeout=300)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert json.loads(scored.stdout)["tasks"]["tydiqa"] == pytest.approx(
        json.loads((workspace / found[0]).read_text())["score"])


@pytest.mark.slow
def test_other_languages_get_their_own_run_folder_and_retrain_the_dropped_target_encoder_exactly(
        quickstart, workspace, stilts_cache) -> None:
    """The target stage dropped its encoder once evaluated: a run on other languages needs it, so
    it trains that stage again (same folder, same weights: the checksums kept at the drop match);
    the intermediate stage is reused as it is."""
    assert quickstart.returncode == 0
    runs = workspace / "outputs" / "runs"
    first = run_folder(runs, "tydiqa", "squad")
    before = (first / "results.json").read_text()
    squad_stage = (first / "stages" / "1-squad" / "stage.json")
    squad_written = squad_stage.stat().st_mtime
    target_before = json.loads((first / "stages" / "2-tydiqa" / "stage.json").read_text())
    again = stilts("+intermediate=squad", "target=tydiqa", "experiment=quickstart", "target.languages=[sw,te]",
                   cache=stilts_cache, cwd=workspace)
    assert again.returncode == 0, again.stderr[-3000:]
    second = run_folder(runs, "tydiqa", "squad", languages=["sw", "te"])
    assert second != first and (first / "results.json").read_text() == before
    results = json.loads((second / "results.json").read_text())
    assert list(results["metrics"]) == ["sw", "te"]
    assert sorted(p.name for p in (second / "predictions").iterdir()) == ["dev-sw.json", "dev-te.json"]
    assert (second / "stages" / "1-squad").resolve() == (first / "stages" / "1-squad").resolve()
    assert (second / "stages" / "2-tydiqa").resolve() == (first / "stages" / "2-tydiqa").resolve()
    assert squad_stage.stat().st_mtime == squad_written
    logs = again.stdout + again.stderr
    assert "Stage 2-tydiqa: its encoder was dropped once its run was evaluated" in logs
    expect_exact_retraining(logs, "2-tydiqa")
    target_after = json.loads((second / "stages" / "2-tydiqa" / "stage.json").read_text())
    assert target_after["files"] == target_before["files"]  # head and dev predictions, bit for bit
    assert target_after["encoder_dropped"]["files"] == target_before["encoder_dropped"]["files"]
    assert results["stages"]["2-tydiqa"]["retrained"] and results["stages"]["1-squad"]["reused"]
    assert results["store_bytes_added"] == 0
    assert results["metrics"]["sw"] == json.loads(before)["metrics"]["sw"]


@pytest.mark.slow
def test_multirun_sweep_makes_four_runs_and_trains_squad_once(quickstart, workspace, stilts_cache) -> None:
    assert quickstart.returncode == 0
    sweep = stilts("-m", "+intermediate=none,squad", "target=xnli,tydiqa", "experiment=quickstart",
                   cache=stilts_cache, cwd=workspace, timeout=1200)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    runs = workspace / "outputs" / "runs"
    for target in ("xnli", "tydiqa"):
        for chain in ("none", "squad"):
            assert (run_folder(runs, target, chain) / "results.json").exists(), (target, chain)
    # squad -> tydiqa existed from the quickstart; squad -> xnli reused the trained squad stage.
    assert len(list((workspace / "outputs" / "stages").glob("squad-*"))) == 1
    assert "reusing" in sweep.stderr + sweep.stdout
    xnli = json.loads((run_folder(runs, "xnli", "squad") / "results.json").read_text())
    check_results_schema(xnli, "xnli", ["squad"], list(get_task("xnli").languages))


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path, stilts_cache) -> None:
    run = stilts("target=xnli", "experiment=quickstart", "trainer=ddp_cpu", "target.languages=[en,zh]",
                 cache=stilts_cache, cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    folder = run_folder(tmp_path / "outputs" / "runs", "xnli", "none", languages=["en", "zh"])
    results = json.loads((folder / "results.json").read_text())
    check_results_schema(results, "xnli", [], ["en", "zh"])
    stage = json.loads((folder / "stages" / "1-xnli" / "stage.json").read_text())
    assert stage["world_size"] == 2
    # Rank 0 alone wrote: no stray files from rank 1, and a single results table printed.
    assert run.stdout.count("XTREME score (xnli)") == 1


def _wandb_summary(run_folder: Path) -> bytes:
    """The offline W&B run of `run_folder` that holds the run-level summary (job_type "run"): the
    bytes of its .wandb record log (summary items are protobuf: key, then value_json)."""
    logs = [path.read_bytes() for path in run_folder.glob("wandb/offline-run-*/run-*.wandb")]
    summaries = [data for data in logs if b"reused_stages" in data]
    assert len(summaries) == 1
    return summaries[0]


@pytest.mark.slow
def test_wandb_offline_one_run_per_stage_and_a_run_summary(tmp_path, stilts_cache) -> None:
    runs = tmp_path / "outputs" / "runs"
    for languages in ("[en]", "[de]"):
        run = stilts("target=xnli", "experiment=quickstart", "logger=wandb", f"target.languages={languages}",
                     "train.max_epochs=1", "keep_target_encoders=true", cache=stilts_cache, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
    first, second = (run_folder(runs, "xnli", "none", languages=[language]) for language in ("en", "de"))
    # The training stage, the zero-shot evaluation and the run's summary; the second run reuses the stage.
    assert len(list((first / "wandb").glob("offline-run-*"))) == 3
    assert len(list((second / "wandb").glob("offline-run-*"))) == 2
    assert re.search(rb"stages/1-xnli/reused\x82\x01.false", _wandb_summary(first))
    assert re.search(rb"stages/1-xnli/reused\x82\x01.true", _wandb_summary(second))
    assert b"average/accuracy" in _wandb_summary(second) and b"\n\x05score" in _wandb_summary(second)
    tables = list(second.glob("wandb/offline-run-*/files/media/table/metrics_*.table.json"))
    table = json.loads(tables[0].read_text())
    assert table["columns"][:3] == ["language", "score", "accuracy"] and [row[0] for row in table["data"]] == ["de"]


@pytest.mark.cli
def test_unknown_names_list_the_valid_ones(tmp_path, stilts_cache) -> None:
    for override, valid in (("target=nope", "tydiqa"), ("experiment=nope", "quickstart"), ("model=nope", "xlmr_large"),
                            ("+intermediate=nope", "hellaswag")):
        run = stilts(override, cache=stilts_cache, cwd=tmp_path, timeout=120)
        assert run.returncode != 0
        assert valid in run.stderr, (override, run.stderr[-2000:])
        assert "Traceback" not in run.stderr


@pytest.mark.cli
def test_offline_without_preset_explains_what_to_do(tmp_path, stilts_cache) -> None:
    run = stilts("target=xnli", cache=stilts_cache, cwd=tmp_path, timeout=120)
    assert run.returncode == 2
    assert "xlm-roberta-large" in run.stderr and "experiment=quickstart" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.cli
def test_missing_and_malformed_local_files(tmp_path, stilts_cache) -> None:
    root = tmp_path / "data"
    (root / "xnli").mkdir(parents=True)
    run = stilts("target=xnli", "experiment=quickstart", "data=local", f"data.root={root}", cache=stilts_cache,
                 cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    assert str(root / "xnli" / "train-en.tsv") in run.stderr and "Traceback" not in run.stderr

    (root / "xnli" / "train-en.tsv").write_text("a\tb\tentailment\nc\td\tmaybe\n", encoding="utf-8")
    (root / "xnli" / "dev-en.tsv").write_text("a\tb\tentailment\n", encoding="utf-8")
    run = stilts("target=xnli", "experiment=quickstart", "data=local", f"data.root={root}", cache=stilts_cache,
                 cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    assert f"{root / 'xnli' / 'train-en.tsv'}:2" in run.stderr and "'maybe'" in run.stderr


@pytest.mark.cli
def test_impossible_batch_config_names_the_keys(tmp_path, stilts_cache) -> None:
    run = stilts("target=xnli", "experiment=quickstart", "trainer=ddp_cpu", "train.effective_batch_size=3",
                 cache=stilts_cache, cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    assert "train.effective_batch_size" in run.stderr and "2 processes" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.cli
def test_data_local_requires_a_root(tmp_path, stilts_cache) -> None:
    run = stilts("target=xnli", "experiment=quickstart", "data=local", cache=stilts_cache, cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    assert "data.root" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow
def test_hydra_run_dir_chooses_where_the_run_goes(tmp_path, stilts_cache) -> None:
    chosen = tmp_path / "my-run"
    run = stilts("target=xnli", "experiment=quickstart", "target.languages=[en]", "train.max_epochs=1",
                 f"hydra.run.dir={chosen}", cache=stilts_cache, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((chosen / "results.json").read_text())["config"]["paths"]["run_dir"] == str(chosen)
    assert (chosen / "predictions" / "test-en.tsv").exists() and (chosen / "logs" / "1-xnli" / "metrics.csv").exists()
    assert not (tmp_path / "outputs" / "runs").exists()
    assert len(list((tmp_path / "outputs" / "stages").glob("xnli-*"))) == 1  # the shared stage store
