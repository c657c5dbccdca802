"""SLURM for real: sweeps submitted through `hydra/launcher=slurm` to a live cluster (CI starts a
single-node one, .ci/slurm-up.sh; on a lab's login node set STILTS_TEST_SLURM_PARTITION to run them
there). A cancelled job is a failed row and its rerun redoes only it; a job preempted and cut by its
time limit requeues itself and ends with the metrics of an uninterrupted run, losing at most one
optimizer step each time; DDP runs 2 tasks per node. Without a cluster these tests skip."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stilts.store.files import read_json
from tests.cli import FAULTS, run_folder

pytestmark = pytest.mark.slow

PARTITION = os.environ.get("STILTS_TEST_SLURM_PARTITION")
# Each job: 1 CPU, 3 GB (the test cluster is 2 CPUs); the tiny model on the shipped samples.
QUICKSTART = ("experiment=quickstart", "trainer=cpu", "trainer.enable_progress_bar=false")
SLURM = ("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=3",
         *((f"hydra.launcher.partition={PARTITION}",) if PARTITION else ()))


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client commands (sinfo, sbatch) on this machine"
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%t", *(["-p", PARTITION] if PARTITION else [])],
                                capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s"
    states = answer.stdout.split()
    if answer.returncode != 0 or not any(state.startswith(("idle", "mix", "alloc")) for state in states):
        return f"no usable SLURM node (sinfo: {answer.stdout.strip() or answer.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = _cluster_problem()
    if problem:
        pytest.skip(f"SLURM tests need a cluster: {problem} (CI starts one with .ci/slurm-up.sh)")


def _environment(cache: Path) -> dict[str, str]:
    # One torch thread per process: the jobs (1 CPU each) and a local reference run share 2 cores,
    # and torch's default of a thread per core makes them spin against each other (15 times slower).
    return dict(os.environ, STILTS_CACHE=str(cache), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline",
                OMP_NUM_THREADS="1")


def _submit(*args: str, cache: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A sweep submitted from this process, as from a login node (it waits for its jobs, which inherit
    its environment)."""
    return subprocess.Popen([sys.executable, "-m", "stilts.train", "-m", *SLURM, *QUICKSTART, *args], cwd=cwd,
                            env={**_environment(cache), **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _records(runs: Path) -> dict[int, dict]:
    """The job records of the (only) sweep under `runs`."""
    found = {}
    for path in runs.glob(".sweeps/*/job-*.json"):
        record = read_json(path)
        if isinstance(record, dict):
            found[record["job"]] = record
    return found


def _wait_until(condition, what: str, timeout: float = 300.0, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def _logs(runs: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in sorted(runs.glob(".submitit/*/*_log.*")))


def test_a_sweep_with_a_cancelled_job_ends_with_its_table_and_a_rerun_redoes_only_it(cluster, tmp_path,
                                                                                      stilts_cache) -> None:
    """2 x 2 with a shared SQuAD stage: one job is cancelled while it trains its target stage."""
    sweep = ("+intermediate=none,squad", "target=xnli,pawsx", "train.max_epochs=12")
    runs = tmp_path / "outputs" / "runs"
    started = time.monotonic()
    submitted = _submit(*sweep, cache=stilts_cache, cwd=tmp_path)
    victim = _wait_until(lambda: _records(runs).get(1) if _records(runs).get(1, {}).get("step") is not None else None,
                         "job 1 to train")
    subprocess.run(["scancel", victim["slurm_job"]], check=True)
    stdout, stderr = submitted.communicate(timeout=600)
    first = time.monotonic() - started
    assert submitted.returncode == 1, stderr[-3000:]
    assert "4 jobs: 3 done, 0 skipped (already finished), 1 failed" in stdout, stdout[-3000:]
    [row] = [line for line in stdout.splitlines() if re.match(r"\s+1\s+failed", line)]
    assert "CANCELLED" in row and "pawsx/none" in row
    assert "Traceback" not in stdout + stderr and "error: 1 of 4 sweep jobs failed" in stderr
    # The sweep's state from its files alone.
    status = subprocess.run([sys.executable, "-m", "stilts.sweep", "status", str(runs)], capture_output=True,
                            text=True, timeout=120)
    assert status.returncode == 0 and "4 jobs: 3 done, 0 skipped, 1 failed" in status.stdout, status.stdout
    assert re.search(r"\n\s+1\s+failed\s+error: CANCELLED", status.stdout), status.stdout
    # The job that needed the SQuAD stage while the other trained it said so at once, then reused it.
    logs = _logs(runs)
    assert logs.count("Stage 1-squad (intermediate): training") == 1 and "Stage 1-squad: reusing" in logs
    assert len(list((tmp_path / "outputs" / "stages").glob("squad-*"))) == 1

    started = time.monotonic()
    rerun = _submit(*sweep, cache=stilts_cache, cwd=tmp_path)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr[-3000:]
    assert "4 jobs: 1 done, 3 skipped (already finished), 0 failed" in stdout, stdout[-3000:]
    assert len(list(runs.rglob("results.json"))) == 4
    results = json.loads((run_folder(runs, "pawsx", "none") / "results.json").read_text())
    assert results["resumed"]  # SIGTERM from scancel: a resume checkpoint at the next optimizer step
    print(f"SLURM 2x2 sweep with a cancelled job: {first:.0f} s, rerun {time.monotonic() - started:.0f} s")


def _signals(log: str) -> list[tuple[str, int, int]]:
    """(signal, the optimizer step it came at, the step its resume checkpoint was saved at), in order."""
    found = re.findall(r"Received (SIG\w+) at optimizer step (\d+)|at optimizer step (\d+) \(the stop signal came", log)
    signals, pending = [], None
    for name, came, saved in found:
        if name:
            pending = (name, int(came))
        elif pending is not None:
            signals.append((*pending, int(saved)))
            pending = None
    return signals


def test_preemption_and_a_time_limit_requeue_the_job_which_ends_with_the_uninterrupted_metrics(
        cluster, tmp_path, stilts_cache) -> None:
    """One job, preempted (`scontrol requeue`) while it trains, then cut by its 2-minute time limit:
    both times it saves a resume checkpoint after the current optimizer step and is requeued (no
    manual rerun); its metrics are those of the same run, uninterrupted, beside it.

    slurmctld sends the time-limit signal (USR2, 60 s before the limit) on its 30-s time-limit pass,
    so 30 to 60 s into the second attempt: the run trains long enough to still be training then.
    Once that signal came, the limit is raised so the third attempt finishes without another one.
    The job's 360 optimizer steps each wait 0.5 s first (tests/faults): it trains for 3 minutes
    whatever the machine's speed, without keeping a core busy; the reference runs them at full speed."""
    run = ("+intermediate=none", "target=xnli", "train.max_epochs=60", "train.checkpoint_every_n_steps=100000")
    reference = subprocess.Popen([sys.executable, "-m", "stilts.train", *QUICKSTART, *run], cwd=tmp_path,
                                 env=dict(_environment(stilts_cache)), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    cut = tmp_path / "slurm"
    cut.mkdir()
    started = time.monotonic()
    submitted = _submit(*run, "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=60",
                        "hydra.launcher.max_num_timeout=5", cache=stilts_cache, cwd=cut,
                        env={"PYTHONPATH": str(FAULTS), "STILTS_STEP_SECONDS": "0.25"})  # 2 micro-batches a step
    runs = cut / "outputs" / "runs"
    job = _wait_until(lambda: _records(runs).get(0) if (_records(runs).get(0, {}).get("step") or 0) > 10 else None,
                      "the job to train 10 steps")
    subprocess.run(["scontrol", "requeue", job["slurm_job"]], check=True)  # what preemption by requeue does
    _wait_until(lambda: "Received SIGUSR2" in _logs(runs) or submitted.poll() is not None,
                "the time-limit signal", timeout=600)
    if submitted.poll() is None:
        subprocess.run(["scontrol", "update", f"JobId={job['slurm_job']}", "TimeLimit=30"], check=True)
    stdout, stderr = submitted.communicate(timeout=900)
    wall = time.monotonic() - started
    assert submitted.returncode == 0, stdout[-2000:] + stderr[-3000:]
    assert "1 jobs: 1 done" in stdout
    log = _logs(runs)
    signals = _signals(log)
    assert {"SIGTERM", "SIGUSR2"} <= {name for name, _, _ in signals}, log[-5000:]
    # Saved right after the optimizer step under way (or the next one, when that step ends an epoch:
    # a resume point there would skip the epoch's validation).
    assert all(0 < saved - came <= 2 for _, came, saved in signals), signals
    assert "Requeued job" in log and "this job is timed-out" in log
    got = json.loads((run_folder(runs, "xnli", "none") / "results.json").read_text())
    # Every restart resumed exactly where the stopped attempt saved: no optimizer step was lost.
    assert got["stages"]["1-xnli"]["resumed_from_steps"] == [saved for _, _, saved in signals], signals
    reference_out, reference_err = reference.communicate(timeout=900)
    assert reference.returncode == 0, reference_err[-3000:]
    expected = json.loads((run_folder(tmp_path / "outputs" / "runs", "xnli", "none") / "results.json").read_text())
    assert not expected["resumed"]
    assert got["metrics"] == expected["metrics"] and got["score"] == expected["score"]
    print(f"SLURM preempted + time-limited job: {wall:.0f} s; signals (name, came at step, saved at step): {signals}")


def test_ddp_with_two_tasks_per_node(cluster, tmp_path, stilts_cache) -> None:
    started = time.monotonic()
    submitted = _submit("trainer=ddp_cpu", "target=xnli", "target.languages=[en]", "train.max_epochs=1",
                        cache=stilts_cache, cwd=tmp_path)
    stdout, stderr = submitted.communicate(timeout=600)
    assert submitted.returncode == 0, stdout[-2000:] + stderr[-3000:]
    assert "1 jobs: 1 done" in stdout and "'tasks_per_node': 2" in stdout + stderr
    results = json.loads((run_folder(tmp_path / "outputs" / "runs", "xnli", "none", languages=["en"])
                          / "results.json").read_text())
    assert results["stages"]["1-xnli"]["world_size"] == 2
    print(f"SLURM DDP job (2 tasks): {time.monotonic() - started:.0f} s")
