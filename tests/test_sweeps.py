"""Sweeps a lab can trust, through the real CLI in subprocesses: a run killed at any point reruns
to the same numbers, concurrent jobs train a shared stage once, a failing sweep job does not stop
the others, a diverged or damaged stage is never reused."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stilts.tasks.common.sources import SAMPLES_ROOT
from tests.cli import FAULTS, expect_exact_retraining, out, run_folder, stilts

PIPELINE = ("+intermediate=squad", "target=tydiqa", "experiment=quickstart", "target.languages=[en,sw]",
            "train.checkpoint_every_n_steps=2")
# Mid-epoch, right after an epoch's end (the quickstart's SQuAD has 4 steps an epoch, 2 micro-batches a
# step), during validation, before stage.json, in the second stage, during the zero-shot evaluation.
KILL_POINTS = ("train:squad:3", "train:squad:5", "train:squad:9", "validate:squad:1", "publish:squad", "train:tydiqa:2", "validate:tydiqa:2",
               "publish:tydiqa", "test:tydiqa")


def _results(workspace: Path, target: str = "tydiqa", chain: str = "squad", **kwargs) -> dict:
    return json.loads((run_folder(workspace / "outputs" / "runs", target, chain, **kwargs) / "results.json").read_text())


def _metrics_csv(workspace: Path, stage: str) -> list[list[str]]:
    """The stage's CSV log rows (epoch, step, values...), without the header."""
    path = (run_folder(workspace / "outputs" / "runs", "tydiqa", "squad", languages=["en", "sw"])
            / "logs" / stage / "metrics.csv")
    return list(csv.reader(path.read_text().splitlines()))[1:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, stilts_cache) -> Path:
    """The uninterrupted run every crashed-and-rerun trial must reproduce exactly."""
    workspace = tmp_path_factory.mktemp("reference")
    run = stilts(*PIPELINE, cache=stilts_cache, cwd=workspace)
    assert run.returncode == 0, run.stderr[-3000:]
    return workspace


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_anywhere_reruns_to_the_same_metrics(point, reference, tmp_path, stilts_cache) -> None:
    killed = stilts(*PIPELINE, cache=stilts_cache, cwd=tmp_path,
                    env={"STILTS_KILL_AT": point, "PYTHONPATH": str(FAULTS)})
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not list((tmp_path / "outputs" / "runs").rglob("results.json"))
    rerun = stilts(*PIPELINE, cache=stilts_cache, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "waiting for job" not in out(rerun)  # the killed job's lock died with it
    expected, got = _results(reference, languages=["en", "sw"]), _results(tmp_path, languages=["en", "sw"])
    assert got["metrics"] == expected["metrics"] and got["score"] == expected["score"]
    assert got["intermediate_metrics"] == expected["intermediate_metrics"]
    kind, task = point.split(":")[:2]
    stage = "1-squad" if task == "squad" else "2-tydiqa"
    if kind != "test":  # killed inside a stage: it resumed from its last checkpoint, and says so
        assert got["resumed"] and got["stages"][stage]["resumed_from_steps"]
        assert "resuming from" in out(rerun)
    if kind == "train" and task == "squad":  # the log keeps the rows before the kill, without duplicates
        resumed_at = got["stages"][stage]["resumed_from_steps"][-1]
        rows, expected_rows = (_metrics_csv(workspace, stage) for workspace in (tmp_path, reference))
        assert [row[:2] for row in rows] == [row[:2] for row in expected_rows]
        assert [row for row in rows if int(row[1]) < resumed_at] == \
            [row for row in expected_rows if int(row[1]) < resumed_at]
    # The same stages, bit for bit (a target stage's dropped encoder by the checksums its stage.json
    # kept), keeping only what reuse needs: no resume state, no target-stage encoder.
    for folder in (reference / "outputs" / "stages").iterdir():
        rerun_folder = tmp_path / "outputs" / "stages" / folder.name
        assert not (rerun_folder / "lightning").exists()
        assert (rerun_folder / "encoder").exists() == folder.name.startswith("squad-")
        task = folder.name.rsplit("-", 1)[0]
        assert _weights(rerun_folder, task) == _weights(folder, task), folder.name


def _weights(stage: Path, task: str) -> dict[str, dict]:
    """Size and sha256 of a stage's encoder and head, kept or dropped."""
    summary = json.loads((stage / "stage.json").read_text())
    records = {**summary["files"], **summary.get("encoder_dropped", {}).get("files", {})}
    return {name: records[name] for name in ("encoder/model.safetensors", f"heads/{task}.safetensors")}


@pytest.mark.slow
def test_a_damaged_checkpoint_is_set_aside_and_the_stage_trained_again(reference, tmp_path, stilts_cache) -> None:
    killed = stilts(*PIPELINE, cache=stilts_cache, cwd=tmp_path,
                    env={"STILTS_KILL_AT": "train:squad:5", "PYTHONPATH": str(FAULTS)})
    assert killed.returncode == -9
    [last] = (tmp_path / "outputs" / "stages").glob("squad-*/lightning/last.ckpt")
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    rerun = stilts(*PIPELINE, cache=stilts_cache, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "is damaged" in out(rerun) and "Traceback" not in out(rerun)
    assert _results(tmp_path, languages=["en", "sw"])["metrics"] == _results(reference, languages=["en", "sw"])["metrics"]


@pytest.mark.slow
def test_damaged_results_and_stage_files_are_detected_and_redone(reference, tmp_path, stilts_cache) -> None:
    shutil.copytree(reference / "outputs", tmp_path / "outputs", symlinks=True)
    expected = _results(reference, languages=["en", "sw"])
    run = run_folder(tmp_path / "outputs" / "runs", "tydiqa", "squad", languages=["en", "sw"])
    [squad] = (tmp_path / "outputs" / "stages").glob("squad-*")
    [tydiqa] = (tmp_path / "outputs" / "stages").glob("tydiqa-*")
    # A truncated results.json is rewritten; the intermediate stage is reused, the target stage (its
    # encoder dropped once evaluated) is trained again to the same weights.
    (run / "results.json").write_text('{"target": "tydiqa", "metr')
    again = stilts(*PIPELINE, cache=stilts_cache, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is damaged" in out(again) and "Stage 1-squad: reusing" in out(again)
    expect_exact_retraining(out(again), "2-tydiqa")
    assert _results(tmp_path, languages=["en", "sw"])["metrics"] == expected["metrics"]
    # Truncated weights beside an intact stage.json, and a truncated stage.json: both stages retrained.
    weights = squad / "encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (tydiqa / "stage.json").write_text((tydiqa / "stage.json").read_text()[:50])
    again = stilts(*PIPELINE, "overwrite=true", cache=stilts_cache, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    damaged = [line for line in out(again).splitlines() if "is damaged" in line]
    assert len(damaged) == 2 and "Traceback" not in out(again), damaged
    assert "Stage 1-squad (intermediate): training" in out(again)
    assert list(squad.glob("stage.json.damaged-*")) and list(tydiqa.glob("stage.json.damaged-*"))
    assert _results(tmp_path, languages=["en", "sw"])["metrics"] == expected["metrics"]


@pytest.mark.slow
def test_two_concurrent_jobs_train_a_shared_stage_once(tmp_path, stilts_cache) -> None:
    common = ("+intermediate=squad", "experiment=quickstart", "target.languages=[en]", "train.max_epochs=1")
    environment = dict(os.environ, STILTS_CACHE=str(stilts_cache), HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    jobs = [subprocess.Popen([sys.executable, "-m", "stilts.train", *common, f"target={target}"], cwd=tmp_path,
                             env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for target in ("xnli", "pawsx")]
    outputs = [job.communicate(timeout=600) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    logs = "".join(stdout + stderr for stdout, stderr in outputs)
    assert logs.count("Stage 1-squad (intermediate): training") == 1
    assert "Stage 1-squad: reusing" in logs
    [stage] = (tmp_path / "outputs" / "stages").glob("squad-*")
    assert not list(stage.rglob("*-v1*"))
    for target in ("xnli", "pawsx"):
        assert _results(tmp_path, target, "squad", languages=["en"])["stages"]["1-squad"]["key"] in stage.name


@pytest.fixture()
def data_copy(tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(SAMPLES_ROOT, root)
    return root


@pytest.mark.slow
def test_a_failing_sweep_job_does_not_stop_the_others_and_a_rerun_finishes_it(tmp_path, data_copy, stilts_cache) -> None:
    train = data_copy / "pawsx" / "train-en.tsv"
    hidden = train.with_name("train.tsv.hidden")
    train.rename(hidden)
    sweep = ("-m", "target=xnli,pawsx,udpos", "experiment=quickstart", "data=local", f"data.root={data_copy}",
             "target.languages=[en]", "train.max_epochs=1")
    first = stilts(*sweep, cache=stilts_cache, cwd=tmp_path, timeout=900)
    assert first.returncode == 1
    assert "3 jobs: 2 done, 0 skipped (already finished), 1 failed" in first.stdout
    assert "error: 1 of 3 sweep jobs failed" in out(first) and "Traceback" not in out(first)
    runs = tmp_path / "outputs" / "runs"
    failed = run_folder(runs, "pawsx", "none", languages=["en"])
    assert str(train) in json.loads((failed / "failed.json").read_text())["error"]
    assert str(train) in (failed / "train.log").read_text()
    for target in ("xnli", "udpos"):
        assert (run_folder(runs, target, "none", languages=["en"]) / "results.json").exists()
    status = stilts("status", str(runs), module="stilts.sweep", cache=stilts_cache, cwd=tmp_path)
    assert "3 jobs: 2 done, 0 skipped, 1 failed" in status.stdout, status.stdout + status.stderr
    [row] = [line for line in status.stdout.splitlines() if " failed " in line]
    assert str(train) in row and "pawsx/none" in row  # the first error line, the run folder
    hidden.rename(train)
    second = stilts(*sweep, cache=stilts_cache, cwd=tmp_path, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "3 jobs: 1 done, 2 skipped (already finished), 0 failed" in second.stdout
    assert out(second).count("skipping this run") == 2
    assert (failed / "results.json").exists() and not (failed / "failed.json").exists()


@pytest.mark.slow
def test_a_diverging_stage_stops_with_one_error_and_is_never_marked_finished(tmp_path, stilts_cache) -> None:
    run = stilts("target=xnli", "experiment=quickstart", "target.languages=[en]", "train.lr=1e6",
                 "train.checkpoint_every_n_steps=1", cache=stilts_cache, cwd=tmp_path)
    assert run.returncode == 2, run.stderr[-3000:]
    [error] = [line for line in out(run).splitlines() if line.startswith("error:")]
    assert "stage 1-xnli" in error and "diverged" in error and "lr 1e+06" in error and "Traceback" not in out(run)
    [stage] = (tmp_path / "outputs" / "stages").glob("xnli-*")
    assert not (stage / "stage.json").exists()
    assert (stage / "lightning" / "last.ckpt").exists()  # the last good checkpoint stays
    assert not list((tmp_path / "outputs" / "runs").rglob("results.json"))


@pytest.mark.slow
def test_joblib_sweep_of_three_by_three_trains_each_intermediate_once(tmp_path, stilts_cache) -> None:
    sweep = stilts("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "+intermediate=none,squad,mnli",
                   "target=xnli,pawsx,tydiqa", "experiment=quickstart", "target.languages=[en]", "train.max_epochs=1",
                   cache=stilts_cache, cwd=tmp_path, timeout=1500)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert "9 jobs: 9 done" in sweep.stdout
    logs = out(sweep)
    runs = tmp_path / "outputs" / "runs"
    assert len(list(runs.rglob("results.json"))) == 9
    for task in ("squad", "mnli"):
        assert len(list((tmp_path / "outputs" / "stages").glob(f"{task}-*"))) == 1
        assert logs.count(f"Stage 1-{task} (intermediate): training") == 1, task
    # What each run added to the store (its closing-table column, results.json) sums to the store.
    added = [json.loads(path.read_text())["store_bytes_added"] for path in runs.rglob("results.json")]
    listed = stilts("ls", str(tmp_path / "outputs" / "stages"), "--json", module="stilts.store", cache=stilts_cache,
                    cwd=tmp_path)
    store = json.loads(listed.stdout)
    assert sum(added) == store["totals"]["total"]["bytes"] > 0
    assert {entry["encoder"] for entry in store["stages"] if entry["role"] == "target"} == {"dropped"}
    assert "stored" in sweep.stdout and "in all (python -m stilts.store du shows the store)" in sweep.stdout


@pytest.mark.slow
def test_ddp_jobs_of_a_multirun_run_alone(tmp_path, stilts_cache) -> None:
    sweep = stilts("-m", "trainer=ddp_cpu", "target=xnli,pawsx", "experiment=quickstart", "target.languages=[en]",
                   "train.max_epochs=1", cache=stilts_cache, cwd=tmp_path, timeout=1200)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert out(sweep).count("Launching 2 jobs locally") == 1
    for target in ("xnli", "pawsx"):
        results = _results(tmp_path, target, "none", languages=["en"])
        assert results["stages"][f"1-{target}"]["world_size"] == 2


@pytest.mark.slow
def test_moving_the_outputs_and_the_cache_reruns_nothing(reference, tmp_path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(reference / "outputs", moved / "outputs", symlinks=True)
    fresh_cache = tmp_path / "fresh-cache"  # the tiny model is rebuilt there, bit-identically
    again = stilts(*PIPELINE, cache=fresh_cache, cwd=moved)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipping this run" in out(again)
    other = stilts(*PIPELINE[:3], "target.languages=[ko]", cache=fresh_cache, cwd=moved)
    assert other.returncode == 0, other.stderr[-3000:]
    assert "Stage 1-squad: reusing" in out(other) and "(intermediate): training" not in out(other)
    # The target stage dropped its encoder: trained again from the moved store and the rebuilt model,
    # it has the same weights.
    expect_exact_retraining(out(other), "2-tydiqa")


@pytest.mark.slow
def test_keep_checkpoints_keeps_them_beside_the_export(tmp_path, stilts_cache) -> None:
    run = stilts("target=xnli", "experiment=quickstart", "target.languages=[en]", "train.max_epochs=1",
                 "keep_checkpoints=true", "keep_target_encoders=true", "train.checkpoint_every_n_steps=1",
                 cache=stilts_cache, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    [stage] = (tmp_path / "outputs" / "stages").glob("xnli-*")
    assert (stage / "lightning" / "last.ckpt").exists() and (stage / "lightning" / "best.ckpt").exists()
    vouched = json.loads((stage / "stage.json").read_text())["files"]
    assert "encoder/model.safetensors" in vouched and not [name for name in vouched if name.startswith(("lightning", "."))]
