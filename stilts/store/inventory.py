"""What a stage store holds, read from its files alone, safely while sweeps run: each stage's role,
tasks, state (finished, training, unfinished, damaged, set aside), bytes by kind, and which runs'
results.json use it. Nothing here writes, creates or sets aside a file; locks are only probed
(taken for an instant without waiting) to tell a stage being trained or read from an idle one."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stilts.store.files import checksum_record_path, folder_bytes, read_json
from stilts.store.results import RESULTS_FILE, read_results
from stilts.store.locks import CLAIM_FILE, IN_USE_FILE, LOCK_FILE, OWNER_FILE
from stilts.store.stages import CHECKPOINTS, DROPPED, ENCODER, RETRAINING_FILE, STAGE_FILE

# Hidden files a stage keeps on purpose (locks, the lock holder, the training claim); every other
# hidden entry is an unfinished write (a temporary file or folder of a killed job).
BOOKKEEPING = (LOCK_FILE, IN_USE_FILE, OWNER_FILE, CLAIM_FILE, RETRAINING_FILE)
SET_ASIDE_MARK = ".damaged-"  # stages.set_aside keeps a damaged file as <name>.damaged-<time>
KINDS = ("encoder", "heads", "predictions", "metadata")  # what a stage holds; resume state is apart


@dataclass
class StageEntry:
    """One folder of the stage store."""

    name: str
    directory: Path
    state: str  # finished | training | unfinished | damaged | set aside
    role: str | None = None
    tasks: list[str] = field(default_factory=list)
    key: str | None = None
    encoder: str = "-"  # kept | dropped | - (no finished encoder)
    bytes: dict[str, int] = field(default_factory=dict)  # by kind (KINDS)
    resume_bytes: int = 0  # Lightning checkpoints (resume state: not part of the stage)
    resume_step: int | None = None
    leftovers: list[Path] = field(default_factory=list)  # unfinished writes, set-aside copies
    leftover_bytes: int = 0
    used_by: list[str] = field(default_factory=list)  # run folders whose results.json use the stage
    in_use: bool = False  # a running run reads it now
    problem: str | None = None  # why it is damaged

    @property
    def size(self) -> int:
        return sum(self.bytes.values())

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.directory), "state": self.state, "role": self.role,
                "tasks": self.tasks, "key": self.key, "encoder": self.encoder, "bytes": self.size,
                "bytes_by_kind": self.bytes, "resume_bytes": self.resume_bytes, "resume_step": self.resume_step,
                "leftover_bytes": self.leftover_bytes, "leftovers": [str(path) for path in self.leftovers],
                "used_by": self.used_by, "in_use": self.in_use, "problem": self.problem}


def lock_held(path: Path, exclusive_probe: bool = False) -> bool:
    """Whether another process holds a flock on `path` (a job's training lock, or with
    `exclusive_probe` a run's shared in-use lock). Probes for an instant; never creates the file."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(handle, (fcntl.LOCK_EX if exclusive_probe else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(handle)


def path_bytes(path: Path) -> int:
    """Bytes of a file, or of everything below a folder (hidden files included)."""
    if path.is_dir():
        return folder_bytes(path, hidden=True)
    with contextlib.suppress(FileNotFoundError):
        return path.stat().st_size
    return 0


def _leftovers(directory: Path) -> list[Path]:
    """Unfinished writes of killed jobs (hidden temporaries) and set-aside damaged copies."""
    found = []
    for root, folders, files in os.walk(directory):
        for name in list(folders):
            if name.startswith("."):
                found.append(Path(root, name))
                folders.remove(name)
        for name in files:
            top = Path(root) == directory
            if SET_ASIDE_MARK in name or (name.startswith(".") and not (top and name in BOOKKEEPING)):
                found.append(Path(root, name))
    return found


def _kind(relative: str) -> str:
    first = relative.split("/", 1)[0]
    return {ENCODER: "encoder", "heads": "heads", "predictions": "predictions"}.get(first, "metadata")


def _stage_bytes(directory: Path) -> dict[str, int]:
    """Bytes by kind of the files a stage holds (not resume state, locks or unfinished writes)."""
    sizes = dict.fromkeys(KINDS, 0)
    for root, folders, files in os.walk(directory):
        top = Path(root) == directory
        folders[:] = [name for name in folders if not name.startswith(".") and not (top and name == CHECKPOINTS)]
        for name in files:
            if name.startswith(".") or SET_ASIDE_MARK in name:
                continue
            path = Path(root, name)
            with contextlib.suppress(FileNotFoundError):
                sizes[_kind(path.relative_to(directory).as_posix())] += path.stat().st_size
    return sizes


def size_problem(directory: Path, summary: Any) -> str | None:
    """Why a stage.json does not describe its folder, by sizes alone (`verify` checks checksums)."""
    if not isinstance(summary, dict) or not isinstance(summary.get("files"), dict):
        return f"{STAGE_FILE} is not a complete stage record"
    for name, record in summary["files"].items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if not isinstance(record, dict) or path.stat().st_size != record.get("size"):
            return f"{name} has another size than recorded"
    return None


def read_stage(directory: Path) -> StageEntry:
    """One stage folder as it is now."""
    entry = StageEntry(directory.name, directory, "unfinished")
    checkpoints = directory / CHECKPOINTS
    entry.resume_bytes = folder_bytes(checkpoints)
    step = read_json(checksum_record_path(checkpoints / "last.ckpt"))
    entry.resume_step = step.get("global_step") if isinstance(step, dict) else None
    entry.leftovers = _leftovers(directory)
    entry.leftover_bytes = sum(path_bytes(path) for path in entry.leftovers)
    entry.bytes = _stage_bytes(directory)
    entry.in_use = lock_held(directory / IN_USE_FILE, exclusive_probe=True)
    summary = read_json(directory / STAGE_FILE)
    if lock_held(directory / LOCK_FILE):
        entry.state = "training"
    elif (directory / STAGE_FILE).exists():
        entry.problem = size_problem(directory, summary)
        entry.state = "damaged" if entry.problem else "finished"
    elif any(SET_ASIDE_MARK in path.name and path.name.startswith(STAGE_FILE) for path in entry.leftovers):
        entry.state = "set aside"
    if isinstance(summary, dict):
        entry.role, entry.key = summary.get("role"), summary.get("key")
        entry.tasks = list(summary.get("tasks") or [summary.get("task")])
        if entry.state == "finished":
            entry.encoder = "dropped" if DROPPED in summary else "kept"
    return entry


def _run_folders(runs_dir: Path) -> Iterator[Path]:
    """Folders holding a results.json below `runs_dir` (hidden folders, e.g. .submitit, skipped)."""
    for root, folders, files in os.walk(runs_dir):
        folders[:] = [name for name in folders if not name.startswith(".") and name != "stages"]
        if RESULTS_FILE in files:
            yield Path(root)


def run_references(runs_dirs: list[Path]) -> dict[str, list[str]]:
    """Stage key -> the run folders (relative to their runs folder) whose results.json use it."""
    used: dict[str, list[str]] = {}
    for runs_dir in runs_dirs:
        for folder in _run_folders(runs_dir):
            results = read_results(folder / RESULTS_FILE)
            for facts in (results or {}).get("stages", {}).values():
                if isinstance(facts, dict) and facts.get("key"):
                    used.setdefault(facts["key"], []).append(folder.relative_to(runs_dir).as_posix())
    return used


def default_runs(stages_dir: Path) -> list[Path]:
    """The runs folder beside the store (outputs/runs beside outputs/stages), when there is one."""
    beside = stages_dir.parent / "runs"
    return [beside] if beside.is_dir() else []


def scan(stages_dir: Path, runs_dirs: list[Path]) -> list[StageEntry]:
    """Every stage folder of the store (hidden ones are removals under way), with its users."""
    used = run_references(runs_dirs)
    entries = []
    for directory in sorted(stages_dir.iterdir()):
        if directory.name.startswith(".") or not directory.is_dir():
            continue
        with contextlib.suppress(FileNotFoundError):  # removed while it was read
            entry = read_stage(directory)
            entry.used_by = sorted(used.get(entry.key or directory.name.rsplit("-", 1)[-1], []))
            entries.append(entry)
    return entries
