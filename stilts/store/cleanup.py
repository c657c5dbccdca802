"""`stilts.store gc`: what the store holds that no run references and no job can use, and its removal.

Always removable: set-aside and damaged copies, unfinished writes of killed jobs (hidden temporary
files and folders, in stages and in run folders), stage folders a killed job left with nothing to
resume, and the encoders of target stages whose runs are evaluated (kept by
keep_target_encoders=true or by a job killed before it dropped them). On request only: unfinished
stages a rerun would resume (`--unfinished`), resume checkpoints kept past a stage's export
(`--checkpoints`), and finished stages no results.json references (`--unreferenced`). Nothing is
touched while a job trains the stage or a run reads it; a stage is removed whole (renamed to a
hidden name first, then deleted), so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from stilts.store.files import read_json
from stilts.store import locks, stages
from stilts.store.inventory import SET_ASIDE_MARK, StageEntry, lock_held, path_bytes, size_problem

OPTIONAL = {"unfinished": "unfinished stage (a rerun resumes it)",
            "checkpoints": "resume checkpoints kept past export",
            "unreferenced": "stage no run uses"}


@dataclass(frozen=True)
class Removal:
    """One thing gc removes: a path, why, how many bytes, and how (a file or folder, a whole
    stage, or a target stage's encoder)."""

    path: Path
    reason: str
    bytes: int
    how: str  # "path" | "stage" | "encoder"
    stage: Path | None  # the stage folder whose locks guard it (None: a run folder's leftover)
    option: str | None = None  # the flag it needs (OPTIONAL), None when always removed


def _stage_removals(entry: StageEntry) -> list[Removal]:
    whole = entry.size + entry.resume_bytes + entry.leftover_bytes
    directory = entry.directory
    if entry.state == "training":
        return []
    if entry.state in ("damaged", "set aside"):
        reason = f"damaged stage ({entry.problem})" if entry.state == "damaged" else "set-aside damaged stage"
        return [Removal(directory, reason, whole, "stage", directory)]
    removals = [Removal(path, "set-aside damaged copy" if SET_ASIDE_MARK in path.name else "unfinished write of a killed job",
                        path_bytes(path), "path", directory) for path in entry.leftovers]
    if entry.state == "unfinished":
        if entry.resume_step is None:
            return [Removal(directory, "partial stage of a killed job (nothing to resume)", whole, "stage", directory)]
        return removals + [Removal(directory, f"{OPTIONAL['unfinished']} at step {entry.resume_step}", whole, "stage",
                                   directory, "unfinished")]
    if entry.resume_bytes:
        removals.append(Removal(directory / stages.CHECKPOINTS, OPTIONAL["checkpoints"], entry.resume_bytes, "path",
                                directory, "checkpoints"))
    if not entry.used_by:
        removals.append(Removal(directory, OPTIONAL["unreferenced"], whole, "stage", directory, "unreferenced"))
    elif entry.role != "intermediate" and entry.encoder == "kept":
        removals.append(Removal(directory / stages.ENCODER, "target-stage encoder kept past its evaluation",
                                entry.bytes.get("encoder", 0), "encoder", directory))
    return removals


def _run_leftovers(runs_dirs: Sequence[Path]) -> list[Removal]:
    """Prediction folders of killed evaluations, in run folders no job is running."""
    removals = []
    for runs_dir in runs_dirs:
        for staging in runs_dir.glob("**/.predictions-*"):
            if not lock_held(staging.parent / locks.LOCK_FILE):
                removals.append(Removal(staging, "unfinished write of a killed job", path_bytes(staging), "path", None))
    return removals


def plan(entries: Sequence[StageEntry], runs_dirs: Sequence[Path], stages_dir: Path) -> list[Removal]:
    """Everything gc could remove, optional items included (their `option` says which flag)."""
    removals = [Removal(path, "removal of an earlier gc, interrupted", path_bytes(path), "path", None)
                for path in sorted(stages_dir.glob(".gc-*"))]
    for entry in entries:
        removals.extend(_stage_removals(entry))
    return removals + _run_leftovers(runs_dirs)


def select(removals: Sequence[Removal], options: set[str]) -> tuple[list[Removal], list[Removal]]:
    """(what goes, what stays for lack of a flag): the items that need no flag or a flag given; a
    stage that goes whole takes its other items with it (counted once)."""
    chosen = [removal for removal in removals if removal.option is None or removal.option in options]
    whole = {removal.stage for removal in chosen if removal.how == "stage"}
    chosen = [removal for removal in chosen if removal.how == "stage" or removal.stage not in whole]
    held = [removal for removal in removals if removal.option is not None and removal.option not in options]
    return chosen, held


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        hidden = path if path.name.startswith(".") else path.with_name(f".gc-{path.name}-{os.getpid()}")
        if hidden != path:
            os.replace(path, hidden)
        shutil.rmtree(hidden)
    else:
        path.unlink(missing_ok=True)


def _remove_stage(directory: Path) -> None:
    hidden = directory.with_name(f".gc-{directory.name}-{os.getpid()}")
    os.replace(directory, hidden)  # atomic: the stage is there whole, or not at all
    shutil.rmtree(hidden)


def _run_idle(run_dir: Path) -> bool:
    lock = FileLock(str(run_dir / locks.LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


def remove(removal: Removal) -> str | None:
    """Carry out one removal; why it was skipped (a job trains the stage or a run reads it), else None."""
    if removal.stage is None:
        if removal.path.name.startswith(".predictions-") and not _run_idle(removal.path.parent):
            return "its run is running"
        with contextlib.suppress(FileNotFoundError):
            _remove_path(removal.path)
        return None
    with locks.alone(removal.stage) as alone:
        if not alone:
            return "a job is training it or a run is reading it"
        if removal.how == "stage":
            _remove_stage(removal.stage)
        elif removal.how == "encoder":
            summary = read_json(removal.stage / stages.STAGE_FILE)
            if size_problem(removal.stage, summary) is not None or not stages.has_encoder(summary):
                return "the stage changed since it was listed"
            stages.drop_encoder(removal.stage, summary)
        else:
            with contextlib.suppress(FileNotFoundError):
                _remove_path(removal.path)
    return None
