"""The stage store: folders of trained stages shared by every job of a sweep.

A stage folder is finished when its `stage.json` exists and every file it vouches for still has
the recorded size and sha256; only then is it reused. Training a stage happens under a file lock
(`filelock`, an OS lock the kernel drops when its holder dies, so a killed job never blocks the
next one), so parallel jobs (SLURM arrays, joblib) that need the same stage train it once: the
others wait, then reuse it. A damaged `stage.json` or file is set aside, logged, and the stage is
trained again (the locks: `stilts.store.locks`). This module knows folders, keys and files, not models.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stilts.store.files import folder_bytes, read_json, record_matches, tree_records, write_json_atomic
from stilts.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

STAGE_FILE = "stage.json"  # written last: its presence (verified) marks a finished stage
ENCODER = "encoder"  # the exported encoder's folder (from_pretrained loads it)
DROPPED = "encoder_dropped"  # in stage.json once the encoder is dropped: when, and its files' records
RETRAINING_FILE = ".stage-before-retraining.json"  # a dropped stage's record while it is trained again
CHECKPOINTS = "lightning"  # Lightning checkpoints: resume state, removed once the stage is exported
NOT_VOUCHED = (STAGE_FILE, CHECKPOINTS)  # nor hidden files (locks, claims, unfinished writes)


@dataclass(frozen=True)
class StageTask:
    """One task a stage trains: its resolved settings (the task's YAML node) and the languages whose
    training data it trains on (intermediate tasks choose; targets train on their training language)."""

    spec: TaskSpec
    settings: Mapping[str, Any]
    languages: tuple[str, ...]


@dataclass(frozen=True)
class EncoderSource:
    """What loads an encoder: a full one (a pretrained model, or the export of a stage that trained
    every weight) and the adapters of the parameter-efficient stages trained on it since, each merged
    into the weights in order."""

    base: str
    adapters: tuple[str, ...] = ()

    def then(self, adapter: Path | str) -> EncoderSource:
        return EncoderSource(self.base, (*self.adapters, str(adapter)))

    def __str__(self) -> str:
        return " + ".join((self.base, *self.adapters))


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
    peft: Mapping[str, Any] | None = None  # the adapter it trains ({"method": "lora", "r": ...}); None: every weight
    starts_from: EncoderSource | None = None  # the encoder it trains from (the previous stage's)

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
        """The exported encoder, or the exported adapter of a parameter-efficient stage."""
        return self.directory / ENCODER

    @property
    def trained_encoder(self) -> EncoderSource:
        """What loads the encoder this stage trained: its export, or the encoder it started from plus its adapter."""
        if self.peft is None:
            return EncoderSource(str(self.encoder_dir))
        assert self.starts_from is not None, f"planned stage {self.name} trains an adapter on an unknown encoder"
        return self.starts_from.then(self.encoder_dir)

    def head_file(self, task: str) -> Path:
        return self.directory / "heads" / f"{task}.safetensors"


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


def has_encoder(summary: Mapping[str, Any]) -> bool:
    """Whether a finished stage still holds its encoder (target stages drop theirs once evaluated)."""
    return DROPPED not in summary


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
