"""Exact resume: checkpoints that are written atomically with a checksum, loaded as weights only,
and carry the RNG state, so a stage killed at any point and rerun ends with the same weights."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins import TorchCheckpointIO

from stilts.files import HashingWriter, atomic_output, read_json, record_matches, write_json_atomic


def _record_path(path: str | Path) -> Path:
    return Path(f"{path}.sha256.json")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file, checksums it on the way, renames it into place,
    then records its size and sha256 beside it; loads with `weights_only=True` (a checkpoint in a
    shared folder can never run code)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_output(path) as stream:
            writer = HashingWriter(stream)
            torch.save(checkpoint, writer)
        write_json_atomic(_record_path(path), dict(writer.record(), global_step=checkpoint.get("global_step")))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)

    def remove_checkpoint(self, path: Any) -> None:
        Path(path).unlink(missing_ok=True)
        _record_path(path).unlink(missing_ok=True)


def checkpoint_intact(path: Path) -> bool:
    """Whether a checkpoint is complete: its recorded size and checksum still match."""
    return record_matches(path, read_json(_record_path(path)))


def checkpoint_step(path: Path) -> int:
    """The optimizer step a checkpoint was written at (from its record: no need to load it)."""
    return int(read_json(_record_path(path))["global_step"])


def _rng_state() -> dict[str, Any]:
    """Every global RNG, in types that `weights_only` loading accepts."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": [version, list(python_state), python_gauss],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, python_state, python_gauss = state["python"]
    random.setstate((version, tuple(python_state), python_gauss))


class ResumeCheckpoint(ModelCheckpoint):
    """`last.ckpt` every N optimizer steps, right after the step (never between the micro-batches of
    one accumulated step, whose gradients a checkpoint does not hold), and never at an epoch's last
    step: Lightning restarting from there skips that epoch's validation, so model selection would
    miss the epoch. After a crash at an epoch's end, the rerun replays from the last mid-epoch point.
    With step-based model selection (`eval_every_steps`) the steps that validate are skipped alike."""

    def __init__(self, folder: Path, every_n_steps: int, eval_every_steps: int | None = None) -> None:
        super().__init__(dirpath=folder, filename="last", save_top_k=1, enable_version_counter=False,
                         every_n_train_steps=every_n_steps)
        self._step_at_batch_start = -1
        self._eval_every_steps = eval_every_steps

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        self._step_at_batch_start = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        stepped = trainer.global_step != self._step_at_batch_start
        validates = bool(self._eval_every_steps) and trainer.global_step % self._eval_every_steps == 0
        if stepped and not validates and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            super().on_train_batch_end(trainer, *args, **kwargs)


class SelectionLog(pl.Callback):
    """Every dev evaluation of a fit as (optimizer step, selection score), kept across resumes (its
    state travels in the checkpoint), so stage.json shows which step model selection picked."""

    def __init__(self) -> None:
        self.evaluations: list[dict[str, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and "val/score" in trainer.callback_metrics:
            self.evaluations.append({"step": trainer.global_step, "score": float(trainer.callback_metrics["val/score"])})

    def best(self) -> dict[str, float] | None:
        """The first best evaluation (ModelCheckpoint keeps the first of equal scores)."""
        return max(self.evaluations, key=lambda evaluation: evaluation["score"]) if self.evaluations else None

    def state_dict(self) -> dict[str, Any]:
        return {"evaluations": list(self.evaluations)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.evaluations = list(state_dict["evaluations"])


class ExactResume(pl.Callback):
    """Saves the RNG state with every checkpoint and puts it back right before the first training
    batch after a resume (dropout then draws exactly what it would have drawn). Also hands the
    training loader its saved position: Lightning builds the loader early (for
    `estimated_stepping_batches`) and then never gives it the state it saved."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._loader_states: list[dict[str, Any]] = []

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["stilts_rng"] = _rng_state()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get("stilts_rng")
        self._loader_states = checkpoint["loops"]["fit_loop"]["state_dict"].get("combined_loader", [])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loaders = trainer.train_dataloader
        stateful = [loader for loader in (loaders if isinstance(loaders, (list, tuple)) else [loaders])
                    if hasattr(loader, "load_state_dict")]
        for loader, state in zip(stateful, self._loader_states):
            loader.load_state_dict(state)
        self._loader_states = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._pending is not None:
            _set_rng_state(self._pending)
            self._pending = None
