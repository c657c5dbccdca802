"""Exact resume: checkpoints that are written atomically with a checksum, loaded as weights only,
and carry the RNG state, so a stage killed at any point and rerun ends with the same weights."""

from __future__ import annotations

import logging
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins import TorchCheckpointIO

from stilts.errors import StiltsError
from stilts.store.files import HashingWriter, atomic_output, checksum_record_path, read_json, record_matches, write_json_atomic

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file, checksums it on the way, renames it into place,
    then records its size and sha256 beside it; loads with `weights_only=True` (a checkpoint in a
    shared folder can never run code)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_output(path) as stream:
            writer = HashingWriter(stream)
            torch.save(checkpoint, writer)
        write_json_atomic(checksum_record_path(path), dict(writer.record(), global_step=checkpoint.get("global_step")))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)

    def remove_checkpoint(self, path: Any) -> None:
        Path(path).unlink(missing_ok=True)
        checksum_record_path(path).unlink(missing_ok=True)


def checkpoint_intact(path: Path) -> bool:
    """Whether a checkpoint is complete: its recorded size and checksum still match."""
    return record_matches(path, read_json(checksum_record_path(path)))


def checkpoint_step(path: Path) -> int:
    """The optimizer step a checkpoint was written at (from its record: no need to load it)."""
    return int(read_json(checksum_record_path(path))["global_step"])


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


class StopSignals:
    """The signals that ask a job to stop (SIGTERM: scancel, `scontrol requeue`, preemption; the
    launcher's warning signal before a time limit: submitit's SIGUSR2, or SIGUSR1) are noted while
    a stage trains instead of acted on at once: the job stops at the next point where a resume
    checkpoint is valid, having saved it. Then the warning signal's own handler runs (submitit's:
    requeue the job, exit) and SIGTERM ends the process; either way the rerun resumes exactly there.
    Lightning's own SLURM requeue is switched off (`make_trainer`): one mechanism, not two."""

    WARNINGS = (signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self) -> None:
        self.received: int | None = None
        self.step: int | None = None  # the optimizer step at which it came
        self._previous: dict[int, Any] = {}
        self._trainer: pl.Trainer | None = None

    def install(self, trainer: pl.Trainer) -> None:
        """Take over SIGTERM and every warning signal someone handles (submitit does under SLURM)."""
        self._trainer = trainer
        for signum in (signal.SIGTERM, *self.WARNINGS):
            previous = signal.getsignal(signum)
            if signum == signal.SIGTERM or callable(previous):
                self._previous[signum] = previous
                signal.signal(signum, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received, self.step = signum, self._trainer.global_step if self._trainer else None
            log.warning("Received %s at optimizer step %s: stopping after the next optimizer step, with a resume "
                        "checkpoint", signal.Signals(signum).name, self.step)

    def pending(self, trainer: pl.Trainer) -> bool:
        """Whether any rank received a stop signal (every rank must stop at the same step)."""
        if trainer.world_size > 1:
            return trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)
        return self.received is not None

    def stop(self, where: str) -> None:
        """Act on the signal once the checkpoint is saved: the warning signal's own handler
        (submitit: requeue and exit), else leave the process as the signal asked."""
        signum = self.received or signal.SIGTERM  # a rank that did not receive it stops with the others
        handler = self._previous.get(signum)
        if signum != signal.SIGTERM and callable(handler):
            try:
                handler(signum, None)
            except Exception as error:  # submitit: no timeouts left (hydra.launcher.max_num_timeout)
                raise StiltsError(f"{signal.Signals(signum).name} and the job was not requeued: {error} The resume "
                                  f"checkpoint {where} stays: submit the same command again to go on") from None
        raise SystemExit(128 + signum)


class ResumeCheckpoint(ModelCheckpoint):
    """`last.ckpt` every N optimizer steps, right after the step (never between the micro-batches of
    one accumulated step, whose gradients a checkpoint does not hold), and never at an epoch's last
    step: Lightning restarting from there skips that epoch's validation, so model selection would
    miss the epoch. After a crash at an epoch's end, the rerun replays from the last mid-epoch point.
    With step-based model selection (`eval_every_steps`) the steps that validate are skipped alike.
    After a stop signal (`StopSignals`) it is written at the first such point, and the job stops."""

    def __init__(self, folder: Path, every_n_steps: int, eval_every_steps: int | None = None) -> None:
        super().__init__(dirpath=folder, filename="last", save_top_k=1, enable_version_counter=False,
                         every_n_train_steps=every_n_steps)
        self._step_at_batch_start = -1
        self._eval_every_steps = eval_every_steps
        self.signals = StopSignals()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.signals.install(trainer)  # after Lightning's own handlers, which its teardown restores

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        self._step_at_batch_start = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        stepped = trainer.global_step != self._step_at_batch_start
        validates = bool(self._eval_every_steps) and trainer.global_step % self._eval_every_steps == 0
        if not stepped or validates or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        if self.signals.pending(trainer):
            path = Path(self.dirpath) / f"{self.filename}{self.FILE_EXTENSION}"
            trainer.save_checkpoint(path)
            log.warning("Saved the resume checkpoint %s at optimizer step %d (the stop signal came at step %s)",
                        path, trainer.global_step, self.signals.step)
            self.signals.stop(f"{path} (step {trainer.global_step})")
        super().on_train_batch_end(trainer, *args, **kwargs)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A signal that came after the last valid point (the epoch's last steps, its validation)
        is acted on now: the rerun resumes from the last resume checkpoint."""
        super().on_train_end(trainer, pl_module)
        if self.signals.pending(trainer):
            self.signals.stop("last saved before the signal")


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
