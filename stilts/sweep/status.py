"""A sweep's state from its files alone (the plan and one record per job under
`<sweep dir>/.sweeps/<sweep id>/`): which jobs are done, skipped, running (stage and step), waiting
for a stage lock (held by which job), failed (first error line), or not started. No scheduler is
asked, so it reads joblib, local and SLURM sweeps alike, from any machine that sees the folder."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.store.files import human_bytes, read_json
from stilts.jobstate import FINAL_STATES, read_record
from stilts.sweep import PLAN_FILE, SWEEPS_DIR

STATES = ("done", "skipped", "running", "waiting", "failed", "not started")


@dataclass(frozen=True)
class Sweep:
    folder: Path
    plan: Mapping[str, Any]
    records: list[dict[str, Any]]  # one per job that has started, by job number
    jobs: list[dict[str, Any]]  # every job of the plan (and any recorded beyond it), with its state

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(job["state"] for job in self.jobs)
        return {state: counted[state] for state in STATES if counted[state] or state in FINAL_STATES}

    @property
    def finished(self) -> bool:
        return all(job["state"] in FINAL_STATES for job in self.jobs)


def find_sweep(path: str | Path, sweep: str | None = None) -> Path:
    """The records folder of a sweep: PATH itself when it is one, else the sweep named `sweep` (or
    the latest one) under PATH/.sweeps (PATH is the sweep dir, e.g. outputs/runs)."""
    path = Path(path)
    if (path / PLAN_FILE).exists() or path.parent.name == SWEEPS_DIR:
        return path
    folder = path / SWEEPS_DIR
    if sweep is not None:
        if not (folder / sweep).is_dir():
            raise StiltsError(f"no sweep {sweep} in {folder}; the sweeps there: "
                              f"{', '.join(p.name for p in sorted(folder.glob('*'))) or 'none'}")
        return folder / sweep
    sweeps = sorted((p for p in folder.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not sweeps:
        raise StiltsError(f"{path} holds no sweep (no {SWEEPS_DIR}/ folder with a sweep's records): give the sweep "
                          "dir of a multirun (hydra.sweep.dir, by default <paths.output_dir>/runs)")
    return sweeps[-1]


def _records(folder: Path) -> dict[int, dict[str, Any]]:
    records = {}
    for path in sorted(folder.glob("job-*.json")):
        record = read_record(path)
        if record is not None and isinstance(record.get("job"), int):
            records[record["job"]] = record
    return records


def _stopped(record: Mapping[str, Any]) -> str:
    where = f" in stage {record['stage']}" if record.get("stage") else ""
    step = f" at step {record['step']}" if record.get("step") is not None else ""
    return f"stopped while {record.get('state')}{where}{step} (killed, or its node failed)"


def read_sweep(folder: Path, ended: bool = True) -> Sweep:
    """The sweep's jobs and states. `ended`: the launcher has returned, so a job whose record is
    still running or waiting was stopped from outside (it is reported failed)."""
    plan = read_json(folder / PLAN_FILE) or {}
    records = _records(folder)
    planned = {job["job"]: job["overrides"] for job in plan.get("jobs", [])}
    jobs = []
    for number in sorted(set(planned) | set(records)):
        record = records.get(number)
        if record is None:
            jobs.append({"job": number, "overrides": planned.get(number, []),
                         **({"state": "failed", "error": "never started"} if ended else {"state": "not started"})})
            continue
        job = dict(record)
        if job.get("state") not in FINAL_STATES and ended:
            job.update(state="failed", error=job.get("error") or _stopped(record))
        jobs.append(job)
    return Sweep(folder, plan, [records[n] for n in sorted(records)], jobs)


def _age(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _job_names(sweep: Sweep) -> dict[str, int]:
    """Stage-lock owner token -> job number, for 'held by job N'."""
    return {record["token"]: record["job"] for record in sweep.records if record.get("token")}


def describe(job: Mapping[str, Any], names: Mapping[str, int], now: float) -> str:
    """What one job is doing, in one line."""
    state = job["state"]
    if state in ("done", "skipped"):
        score = job.get("score")
        stored = f", stored {human_bytes(job['store_bytes'])}" if isinstance(job.get("store_bytes"), int) else ""
        return (f"score {score:.2f}" if isinstance(score, (int, float)) else "no score (no gold)") + stored
    if state == "failed":
        return f"error: {job.get('error', '?')}"
    if state == "not started":
        return " ".join(job.get("overrides", []))
    age = f", updated {_age(now - job['updated'])} ago" if isinstance(job.get("updated"), (int, float)) else ""
    if state == "waiting":
        holder = job.get("waiting_for") or {}
        owner = names.get(holder.get("job"))
        who = f"job {owner}" if owner is not None else f"{holder.get('job', '?')}"
        return f"for stage {job.get('stage', '?')}: held by {who} on {holder.get('host', '?')} since {holder.get('since', '?')}{age}"
    if job.get("stage"):
        steps = f"/{job['steps']}" if job.get("steps") else ""
        step = f", step {job['step']}{steps}" if job.get("step") is not None else ""
        return f"stage {job['stage']}{step}{age}"
    return f"starting{age}"


def _where(job: Mapping[str, Any]) -> str:
    """The SLURM job (and how often it was requeued), else the host and process."""
    if job.get("slurm_job"):
        return f"slurm {job['slurm_job']}" + (f" (requeued {job['slurm_restarts']}x)" if job.get("slurm_restarts") else "")
    return f"{job.get('host', '')} pid {job['pid']}" if job.get("pid") else ""


def _counts_line(sweep: Sweep) -> str:
    counts = ", ".join(f"{number} {state}" for state, number in sweep.counts.items())
    return f"sweep {sweep.name}: {len(sweep.jobs)} jobs: {counts}"


def format_status(sweep: Sweep, now: float | None = None) -> str:
    """Per job: state, what it is doing, where it runs and its run folder; counts; stages in training."""
    now = time.time() if now is None else now
    names = _job_names(sweep)
    lines = [_counts_line(sweep), f"{'job':>4}  {'state':<12}  {'detail':<60}  {'where':<24}  run"]
    for job in sweep.jobs:
        lines.append(f"{job['job']:>4}  {job['state']:<12}  {describe(job, names, now):<60}  {_where(job):<24}  "
                     f"{job.get('run_dir', '')}")
    training = [f"{job['stage']} (job {job['job']}, step {job.get('step', '?')}{'/' + str(job['steps']) if job.get('steps') else ''})"
                for job in sweep.jobs if job["state"] == "running" and job.get("stage")]
    lines.append(f"training now: {', '.join(training) if training else 'nothing'}")
    return "\n".join(lines)


def format_final_table(sweep: Sweep) -> str:
    """The closing table of a sweep (every job has ended)."""
    done, skipped, failed = (sweep.counts.get(state, 0) for state in FINAL_STATES)
    lines = [f"sweep {sweep.name}: {len(sweep.jobs)} jobs: {done} done, {skipped} skipped (already finished), "
             f"{failed} failed", f"{'job':>4}  {'status':<8}{'score':>8}{'stored':>10}  run"]
    for job in sweep.jobs:
        score = job.get("score")
        cell = f"{score:8.2f}" if isinstance(score, (int, float)) else f"{'-':>8}"
        stored = job.get("store_bytes")
        cell += f"{human_bytes(stored) if isinstance(stored, int) else '-':>10}"
        detail = f"  error: {job['error']}" if job["state"] == "failed" and job.get("error") else ""
        lines.append(f"{job['job']:>4}  {job['state']:<8}{cell}  {job.get('run_dir', '?')}{detail}")
    added = sum(job["store_bytes"] for job in sweep.jobs if isinstance(job.get("store_bytes"), int))
    lines.append(f"stored: what each run added to the stage store; {human_bytes(added)} in all "
                 "(python -m stilts.store du shows the store)")
    return "\n".join(lines)


def summary(sweep: Sweep) -> dict[str, Any]:
    """JSON-ready state of a sweep (`stilts.sweep status --json`)."""
    return {"sweep": sweep.name, "folder": str(sweep.folder), "counts": sweep.counts, "jobs": sweep.jobs}
