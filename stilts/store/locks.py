"""Who works on a stage: training it under a file lock (`filelock`, an OS lock the kernel drops when
its holder dies, so a killed job never blocks the next one; parallel jobs that need the same stage
train it once, the others wait, then reuse it), this job's DDP ranks joining rank 0's decision, runs
holding a shared lock on every stage they read (`in_use`), and holding a stage alone (`alone`: no job
trains it, no run reads it), which dropping an encoder or removing a stage requires."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from stilts.errors import StiltsError
from stilts.store.files import read_json, umask_mode, write_json_atomic
from stilts.store.stages import finished, has_encoder

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"
IN_USE_FILE = ".in-use"  # shared flock held by each run that reads the stage
OWNER_FILE = ".lock-owner.json"  # who holds the lock, for the waiting jobs' messages
CLAIM_FILE = ".training.json"  # which job trains the stage now (its DDP ranks join it)
WAIT_REPORT_SECONDS = 60.0


def job_token() -> str:
    """One id shared by every rank of this job and by no other job: ranks started by Lightning
    inherit it from rank 0's environment; ranks started by SLURM derive the same one."""
    token = os.environ.get("STILTS_JOB_TOKEN")
    if token:
        return token
    if "SLURM_JOB_ID" in os.environ:
        token = "slurm-" + "-".join(os.environ.get(name, "0") for name in
                                    ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_RESTART_COUNT"))
    elif "TORCHELASTIC_RUN_ID" in os.environ:
        token = "torchrun-" + os.environ["TORCHELASTIC_RUN_ID"]
    else:
        token = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.environ["STILTS_JOB_TOKEN"] = token
    return token


@contextlib.contextmanager
def training_lock(directory: Path, name: str,
                  on_wait: Callable[[dict[str, Any]], None] | None = None) -> Iterator[None]:
    """Hold the stage's lock; while another job holds it, say who at once and then every minute
    (`on_wait` gets the holder's record: job, pid, host, since)."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK_FILE))
    started, timeout = time.monotonic(), 0.0
    while True:
        try:
            lock.acquire(timeout=timeout)
            break
        except Timeout:
            owner = read_json(directory / OWNER_FILE) or {}
            log.info("%s: waiting for job %s (pid %s on %s, since %s) to finish training it (%.0f s so far)",
                     name[:1].upper() + name[1:], owner.get("job", "?"), owner.get("pid", "?"), owner.get("host", "?"),
                     owner.get("since", "?"), time.monotonic() - started)
            if on_wait is not None:
                on_wait(owner)
            timeout = WAIT_REPORT_SECONDS
        except NotImplementedError as error:  # a file system without flock support
            raise StiltsError(f"cannot lock {directory / LOCK_FILE}: {error}; put paths.stages_dir on a file "
                              "system with file locks (e.g. NFSv4, or Lustre mounted with -o flock)") from None
    try:
        write_json_atomic(directory / OWNER_FILE, {"job": job_token(), "pid": os.getpid(),
                                                    "host": socket.gethostname(),
                                                    "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        yield
    finally:
        (directory / OWNER_FILE).unlink(missing_ok=True)
        lock.release()


def claim(directory: Path) -> None:
    """Mark the stage as being trained by this job, so this job's other ranks join the training."""
    write_json_atomic(directory / CLAIM_FILE, {"job": job_token()})


def unclaim(directory: Path) -> None:
    (directory / CLAIM_FILE).unlink(missing_ok=True)


def await_rank_zero(directory: Path, name: str, need_encoder: bool, poll_seconds: float = 1.0
                    ) -> dict[str, Any] | None:
    """Ranks > 0 follow rank 0's decision: the finished stage's summary (reuse it), or None once
    rank 0 of this job has claimed the stage (train it together). A stage whose encoder was dropped
    counts as finished only when this job does not need its encoder (rank 0 trains it again)."""
    token, waited = job_token(), 0.0
    while True:
        summary = finished(directory)
        if summary is not None and (has_encoder(summary) or not need_encoder):
            return summary
        if (read_json(directory / CLAIM_FILE) or {}).get("job") == token:
            return None
        time.sleep(poll_seconds)
        waited += poll_seconds
        if waited % WAIT_REPORT_SECONDS < poll_seconds:
            log.info("Stage %s: rank waiting for rank 0 (%.0f s)", name, waited)


@contextlib.contextmanager
def in_use(directory: Path) -> Iterator[None]:
    """Hold a shared lock saying a running run reads this stage (to train from its encoder or to
    evaluate it): nobody drops its encoder or removes it meanwhile. Waits while a process holds the
    stage alone (a drop takes a moment); the kernel releases it when the run dies."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = os.open(directory / IN_USE_FILE, os.O_RDWR | os.O_CREAT, umask_mode())
    try:
        fcntl.flock(handle, fcntl.LOCK_SH)
        yield
    finally:
        os.close(handle)


@contextlib.contextmanager
def alone(directory: Path) -> Iterator[bool]:
    """Whether this process holds the stage alone, held through the block: no job trains it (its
    training lock) and no run reads it (no shared `in_use` lock). Never waits."""
    lock = FileLock(str(directory / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        handle = os.open(directory / IN_USE_FILE, os.O_RDWR | os.O_CREAT, umask_mode())
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            yield False
            return
        try:
            yield True
        finally:
            os.close(handle)
    finally:
        lock.release()
