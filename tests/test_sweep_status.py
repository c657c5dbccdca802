"""A sweep's state from its files (`python -m stilts.sweep status`), the stage lock that says at once
who it waits for, and the SLURM launcher's checks before anything is submitted (no cluster needed:
fake `sacct`/`sbatch` commands stand in where one must answer)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from stilts.store import locks
from stilts.errors import StiltsError
from stilts.store.files import write_json_atomic
from stilts.sweep import PLAN_FILE, record_path
from stilts.sweep.status import find_sweep, format_final_table, format_status, read_sweep

NOW = 1_800_000_000.0


def _sweep_folder(runs: Path, name: str = "sweep-1") -> Path:
    """Six planned jobs in every state a job can be in while its sweep runs."""
    folder = runs / ".sweeps" / name
    write_json_atomic(folder / PLAN_FILE, {"sweep": name, "jobs": [
        {"job": n, "overrides": [f"+intermediate={chain}", f"target={target}"]}
        for n, (chain, target) in enumerate([("none", "xnli"), ("none", "pawsx"), ("squad", "xnli"),
                                             ("squad", "pawsx"), ("mnli", "xnli"), ("mnli", "pawsx")])]})
    records = [
        {"job": 0, "state": "done", "score": 71.25, "run_dir": "runs/xnli/none/x", "slurm_job": "7_0",
         "store_bytes": 1_712_345},
        {"job": 1, "state": "skipped", "score": 80.5, "run_dir": "runs/pawsx/none/x", "store_bytes": 0},
        {"job": 2, "state": "running", "stage": "1-squad", "step": 120, "steps": 400, "token": "slurm-7-0-0",
         "slurm_job": "7_2", "slurm_restarts": 1, "updated": NOW - 5},
        {"job": 3, "state": "waiting", "stage": "1-squad", "updated": NOW - 65,
         "waiting_for": {"job": "slurm-7-0-0", "pid": 12, "host": "node3", "since": "2026-12-04 10:15:02"}},
        {"job": 4, "state": "failed", "error": "CANCELLED: slurmstepd: error: *** JOB 7 ON node3 CANCELLED ***"},
    ]
    for record in records:
        write_json_atomic(record_path(folder, record["job"]), record)
    return folder


def test_status_names_each_job_state_and_what_it_does(tmp_path) -> None:
    folder = _sweep_folder(tmp_path / "runs")
    sweep = read_sweep(folder, ended=False)
    assert sweep.counts == {"done": 1, "skipped": 1, "running": 1, "waiting": 1, "failed": 1, "not started": 1}
    assert not sweep.finished
    lines = format_status(sweep, now=NOW).splitlines()
    assert lines[0] == "sweep sweep-1: 6 jobs: 1 done, 1 skipped, 1 running, 1 waiting, 1 failed, 1 not started"
    row = {int(line.split()[0]): line for line in lines[2:-1]}
    assert "score 71.25, stored 1.7 MB" in row[0] and "slurm 7_0" in row[0]
    assert "stage 1-squad, step 120/400, updated 5 s ago" in row[2] and "slurm 7_2 (requeued 1x)" in row[2]
    assert "for stage 1-squad: held by job 2 on node3 since 2026-12-04 10:15:02" in row[3]
    assert "error: CANCELLED: slurmstepd: error: *** JOB 7" in row[4]
    assert "not started" in row[5] and "+intermediate=mnli target=pawsx" in row[5]
    assert lines[-1] == "training now: 1-squad (job 2, step 120/400)"


def test_once_the_launcher_returned_an_unfinished_job_is_a_failed_row(tmp_path) -> None:
    sweep = read_sweep(_sweep_folder(tmp_path / "runs"), ended=True)
    assert sweep.counts == {"done": 1, "skipped": 1, "failed": 4}
    jobs = {job["job"]: job for job in sweep.jobs}
    assert jobs[2]["error"] == "stopped while running in stage 1-squad at step 120 (killed, or its node failed)"
    assert jobs[5]["error"] == "never started"
    table = format_final_table(sweep).splitlines()
    assert table[1].split() == ["job", "status", "score", "stored", "run"]
    assert table[2].split()[:5] == ["0", "done", "71.25", "1.7", "MB"] and table[3].split()[3:5] == ["0", "B"]
    assert table[-1].startswith("stored: what each run added to the stage store; 1.7 MB in all")


@pytest.mark.cli
def test_status_cli_reads_the_latest_sweep_or_the_one_named(tmp_path) -> None:
    runs = tmp_path / "runs"
    _sweep_folder(runs, "sweep-1")
    time.sleep(0.01)
    latest = _sweep_folder(runs, "sweep-2")
    os.utime(latest, (time.time() + 10, time.time() + 10))
    assert find_sweep(runs) == latest and find_sweep(runs, "sweep-1") == runs / ".sweeps" / "sweep-1"
    assert find_sweep(latest) == latest
    shown = subprocess.run([sys.executable, "-m", "stilts.sweep", "status", str(runs), "--sweep", "sweep-1", "--json"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["sweep"] == "sweep-1" and document["counts"]["waiting"] == 1 and len(document["jobs"]) == 6
    missing = subprocess.run([sys.executable, "-m", "stilts.sweep", "status", str(tmp_path / "nowhere")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and len(missing.stderr.splitlines()) == 1
    with pytest.raises(StiltsError, match="no sweep sweep-9"):
        find_sweep(runs, "sweep-9")


@pytest.mark.cli
def test_status_watch_refreshes_until_every_job_has_ended(tmp_path) -> None:
    folder = _sweep_folder(tmp_path / "runs")
    watching = subprocess.Popen([sys.executable, "-m", "stilts.sweep", "status", str(folder), "--watch", "0.2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    assert watching.poll() is None  # jobs still run: it keeps refreshing
    for job, state in ((2, "done"), (3, "skipped"), (5, "failed")):
        write_json_atomic(record_path(folder, job), {"job": job, "state": state})
    stdout, _ = watching.communicate(timeout=60)
    assert watching.returncode == 0
    assert stdout.count("sweep sweep-1: 6 jobs") >= 2 and "6 jobs: 2 done, 2 skipped, 2 failed" in stdout


def test_a_job_waiting_for_a_stage_lock_says_so_at_once_and_who_holds_it(tmp_path, caplog) -> None:
    holder = FileLock(str(tmp_path / locks.LOCK_FILE), thread_local=False)  # released by the timer thread
    holder.acquire()
    write_json_atomic(tmp_path / locks.OWNER_FILE, {"job": "slurm-7-0-0", "pid": 12, "host": "node3", "since": "x"})
    waits: list[tuple[float, dict]] = []
    started = time.monotonic()
    threading.Timer(1.5, holder.release).start()
    with caplog.at_level(logging.INFO, logger="stilts.store.locks"):
        with locks.training_lock(tmp_path, "stage 1-squad",
                                  on_wait=lambda owner: waits.append((time.monotonic() - started, owner))):
            acquired = time.monotonic() - started
    assert len(waits) == 1 and waits[0][0] < 1.0 and waits[0][1]["job"] == "slurm-7-0-0"  # at once, not after 60 s
    assert 1.4 < acquired < 5.0
    assert "Stage 1-squad: waiting for job slurm-7-0-0 (pid 12 on node3" in caplog.text


def _fake_commands(folder: Path, sacct: str) -> dict[str, str]:
    """PATH with a `sacct` that behaves as given and an `sbatch` that records being called."""
    folder.mkdir()
    (folder / "sacct").write_text(f"#!/bin/sh\n{sacct}\n")
    (folder / "sbatch").write_text(f"#!/bin/sh\ntouch {folder}/sbatch-called\necho 'Submitted batch job 1'\n")
    for name in ("sacct", "sbatch"):
        (folder / name).chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.cli
@pytest.mark.parametrize("overrides,sacct,expected", [
    ((), "echo 'sacct: error: Slurm accounting storage is disabled' >&2; exit 1",
     "this cluster answers no job accounting query (sacct: sacct: error: Slurm accounting storage is disabled)"),
    (("trainer=ddp",), "exit 0", "trainer.devices=auto cannot be requested from SLURM"),
])
def test_the_slurm_launcher_refuses_before_submitting(tmp_path, stilts_cache, overrides, sacct, expected) -> None:
    from tests.cli import stilts

    fake = tmp_path / "bin"
    run = stilts("-m", "hydra/launcher=slurm", "experiment=quickstart", "target=xnli,pawsx", *overrides,
                 cache=stilts_cache, cwd=tmp_path, env=_fake_commands(fake, sacct), timeout=120)
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    [error] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert expected in error and "Traceback" not in run.stdout + run.stderr
    assert not (fake / "sbatch-called").exists()  # nothing was submitted


def test_first_error_line_finds_what_went_wrong() -> None:
    from hydra_plugins.stilts_launcher.slurm import first_error_line

    cancelled = ("submitit INFO starting\nslurmstepd-vm: error: *** JOB 12 ON vm CANCELLED AT 2026-12-04T05:24:19 "
                 "DUE TO TIME LIMIT ***\nsrun: got SIGCONT\n")
    assert first_error_line(cancelled).startswith("slurmstepd-vm: error: *** JOB 12 ON vm CANCELLED")
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    f()\nMemoryError: out\n'
    assert first_error_line(traceback) == "MemoryError: out"
    assert first_error_line("") == ""
