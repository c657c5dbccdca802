"""A sweep job's state as one small JSON file, rewritten atomically as the job goes (running, its
stage and step, waiting for a stage lock, then done / skipped / failed), so `stilts.sweep status`
can tell what every job of a 300-job sweep is doing by reading files only, on any launcher.

The process that runs a multirun job opens its record (`open_record`); everything below (the
stage lock, the training loop) calls `update`, which does nothing outside a sweep job and in DDP
ranks other than 0. Step updates are throttled: a record is rewritten at most every few seconds.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from stilts.store.files import read_json, write_json_atomic

FINAL_STATES = ("done", "skipped", "failed")
STEP_UPDATE_SECONDS = 10.0
RECORD_VARIABLE = "STILTS_JOB_RECORD"  # a child process that runs a sweep job (DDP run alone) updates its record

_record: Path | None = None
_fields: dict[str, Any] = {}
_last_step_write = 0.0


def scheduler_ids() -> dict[str, Any]:
    """The SLURM ids of this process (job, array task, restart count), for status and scancel."""
    if "SLURM_JOB_ID" not in os.environ:
        return {}
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ["SLURM_JOB_ID"]
    return {"slurm_job": job, "slurm_restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)}


def open_record(path: Path, **fields: Any) -> None:
    """Start this job's record (state `running`); later updates merge into it."""
    global _record, _fields, _last_step_write
    _record, _fields, _last_step_write = path, {}, 0.0
    update(state="running", started=time.strftime("%Y-%m-%d %H:%M:%S"), host=socket.gethostname(), pid=os.getpid(),
           **scheduler_ids(), **fields)


def current_path() -> Path | None:
    return _record


def attach_record(path: Path) -> None:
    """Update a record another process of this job opened (the child that runs a DDP job alone)."""
    global _record, _fields
    _record, _fields = path, read_record(path) or {}


def update(**fields: Any) -> None:
    """Merge `fields` into this job's record and rewrite it (a no-op outside a sweep job)."""
    if _record is None:
        return
    _fields.update(fields)
    if fields.get("state") in FINAL_STATES or fields.get("state") == "waiting":
        _fields.pop("step", None)
    write_record(_record, _fields)


def waiting(what: str) -> Callable[[dict[str, Any]], None]:
    """A lock's `on_wait`: records in the sweep job's state that it waits for a lock another job
    holds (and who holds it)."""
    return lambda owner: update(state="waiting", stage=what, waiting_for=owner)


def step_due(stage: str) -> bool:
    """Whether a step update would be written now (the first of a stage, then every STEP_UPDATE_SECONDS)."""
    return _record is not None and (_fields.get("stage") != stage or _fields.get("step") is None
                                    or time.monotonic() - _last_step_write >= STEP_UPDATE_SECONDS)


def training_step(stage: str, step: int, steps: int | None) -> None:
    """The stage being trained and its optimizer step (call when `step_due`)."""
    global _last_step_write
    _last_step_write = time.monotonic()
    update(state="running", stage=stage, step=step, steps=steps, waiting_for=None)


def close_record(**fields: Any) -> None:
    """The job's final state (`done`, `skipped` or `failed`)."""
    global _record
    update(**fields)
    _record = None


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write another job's record (the launcher marking a job that could not say it ended)."""
    write_json_atomic(path, dict(record, updated=time.time()))


def read_record(path: Path) -> dict[str, Any] | None:
    record = read_json(path)
    return record if isinstance(record, dict) else None
