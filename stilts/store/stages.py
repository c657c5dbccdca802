"""The stage store: folders of trained stages shared by every job of a sweep.

A stage folder is finished when its `stage.json` exists and every file it vouches for still has
the recorded size and sha256; only then is it reused. Training a stage happens under a file lock
(`filelock`, an OS lock the kernel drops when its holder dies, so a killed job never blocks the
next one), so parallel jobs (SLURM arrays, joblib) that need the same stage train it once: the
others wait, then reuse it. A damaged `stage.json` or file is set aside, logged, and the stage is
trained again. A run holds a shared lock on every stage it reads (`in_use`); an encoder is dropped
and a stage removed only by a process that holds a stage alone (`alone`): no job trains it, no
run reads it. This module knows folders, keys and files, not models.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from stilts.errors import StiltsError
from stilts.files import folder_bytes, read_json, record_matches, tree_records, umask_mode, write_json_atomic
from stilts.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

STAGE_FILE = "stage.json"  # written last: its presence (verified) marks a finished stage
ENCODER = "encoder"  # the exported encoder's folder (from_pretrained loads it)
DROPPED = "encoder_dropped"  # in stage.json once the encoder is dropped: when, and its files' records
RETRAINING_FILE = ".stage-before-retraining.json"  # a dropped stage's record while it is trained again
LOCK_FILE = ".lock"
IN_USE_FILE = ".in-use"  # shared flock held by each run that reads the stage
OWNER_FILE = ".lock-owner.json"  # who holds the lock, for the waiting jobs' messages
CLAIM_FILE = ".training.json"  # which job trains the stage now (its DDP ranks join it)
CHECKPOINTS = "lightning"  # Lightning checkpoints: resume state, removed once the stage is exported
NOT_VOUCHED = (STAGE_FILE, CHECKPOINTS)  # nor hidden files (locks, claims, unfinished writes)
WAIT_REPORT_SECONDS = 60.0


@dataclass(frozen=True)
class StageTask:
    """One task a stage trains: its resolved settings (the task's YAML node) and the languages whose
    training data it trains on (intermediate tasks choose; targets train on their training language)."""

    spec: TaskSpec
    settings: Mapping[str, Any]
    languages: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    """A planned or finished training stage: one task, or a mixture of tasks on one encoder."""

    index: int
    role: str  # "intermediate", "target-recipe" or "target"
    label: str  # the task's name, or the mixture's (e.g. all9)
    tasks: Mapping[str, StageTask]
    key: str
    directory: Path
    mixture: Mapping[str, Any] | None = None  # a mixture's sampler, budget and selection settings

    @property
    def name(self) -> str:
        return f"{self.index}-{self.label}"

    @property
    def spec(self) -> TaskSpec:
        """The task of a single-task stage."""
        if self.mixture is not None:
            raise ValueError(f"stage {self.name} is a mixture of {', '.join(self.tasks)}")
        return next(iter(self.tasks.values())).spec

    @property
    def settings(self) -> Mapping[str, Any]:
        return next(iter(self.tasks.values())).settings

    @property
    def encoder_dir(self) -> Path:
        return self.directory / ENCODER

    def head_file(self, task: str) -> Path:
        return self.directory / "heads" / f"{task}.safetensors"


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


def finished(directory: Path, set_aside_damaged: bool = True) -> dict[str, Any] | None:
    """The stage's summary when it is finished and intact; None when it is not (yet) finished.
    A damaged stage (unreadable stage.json, a missing or changed file) is logged and, unless the
    caller only reads the store (`set_aside_damaged=False`), set aside so it is trained again."""
    stage_file = directory / STAGE_FILE
    if not stage_file.exists():
        return None
    summary = read_json(stage_file)
    problem = checksum_problem(directory, summary)
    if problem is None:
        return summary
    if not set_aside_damaged:
        log.warning("Stage %s is damaged: %s; not used", directory.name, problem)
        return None
    set_aside(stage_file)
    log.warning("Stage %s is damaged: %s; it will be trained again", directory.name, problem)
    return None


def checksum_problem(directory: Path, summary: Any) -> str | None:
    """Why a stage's record does not vouch for its folder (damaged stage.json, a file missing or
    changed since it was written); None when every file has its recorded size and sha256."""
    if not isinstance(summary, dict) or not isinstance(summary.get("files"), dict):
        return f"{directory / STAGE_FILE} is damaged (not a complete stage.json)"
    changed = [name for name, record in summary["files"].items() if not record_matches(directory / name, record)]
    if changed:
        return f"{directory}: {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} changed or missing"
    return None


def set_aside(path: Path) -> None:
    """Keep a damaged file for inspection under another name instead of deleting it."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"))


def publish(directory: Path, summary: Mapping[str, Any]) -> dict[str, Any]:
    """Record size and checksum of every exported file, then write stage.json (last, atomically)."""
    document = dict(summary, files=tree_records(directory, exclude=NOT_VOUCHED))
    write_json_atomic(directory / STAGE_FILE, document)
    return document


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

def has_encoder(summary: Mapping[str, Any]) -> bool:
    """Whether a finished stage still holds its encoder (target stages drop theirs once evaluated)."""
    return DROPPED not in summary


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


def drop_encoder(directory: Path, summary: Mapping[str, Any]) -> int:
    """Remove a finished stage's encoder (the caller holds the stage `alone`): stage.json first
    stops vouching for it and records its files (a retrained copy is checked against them), then
    the folder goes under a hidden name, so a reader never sees a stage missing a file it vouches
    for. Returns the bytes freed."""
    prefix = f"{ENCODER}/"
    dropped = {name: record for name, record in summary["files"].items() if name.startswith(prefix)}
    if not dropped:
        return 0
    kept = {name: record for name, record in summary["files"].items() if not name.startswith(prefix)}
    write_json_atomic(directory / STAGE_FILE, dict(summary, files=kept, **{
        DROPPED: {"at": time.strftime("%Y-%m-%d %H:%M:%S"), "files": dropped}}))
    hidden = directory / f".{ENCODER}-dropped-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.replace(directory / ENCODER, hidden)
    shutil.rmtree(hidden, ignore_errors=True)
    return sum(record["size"] for record in dropped.values())


def begin_retraining(directory: Path) -> None:
    """Before a dropped stage is trained again (under its training lock): its record moves aside,
    so the folder reads as unfinished while its files are rewritten."""
    os.replace(directory / STAGE_FILE, directory / RETRAINING_FILE)


def check_retrained(directory: Path, summary: Mapping[str, Any]) -> list[str] | None:
    """After a dropped stage was trained again: the files whose checksum differs from the first
    training's (empty: the same weights, bit for bit; None: the stage was not trained before); the
    earlier record is then removed."""
    previous = read_json(directory / RETRAINING_FILE)
    if not isinstance(previous, dict):
        return None
    before = {**previous.get("files", {}), **previous.get(DROPPED, {}).get("files", {})}
    after = summary["files"]
    differ = sorted(name for name, record in before.items()
                    if name in after and after[name].get("sha256") != record.get("sha256"))
    (directory / RETRAINING_FILE).unlink(missing_ok=True)
    return differ


def stored_bytes(directory: Path) -> int:
    """What a stage holds in the store: its files, not resume state (Lightning checkpoints live
    only until the stage is exported) nor locks and unfinished writes."""
    return folder_bytes(directory, skip=(CHECKPOINTS,))
