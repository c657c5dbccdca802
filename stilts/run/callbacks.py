"""Lightning callbacks of a stage's fit that report to stilts: progress in the sweep job's record,
and the dev results of the best evaluation (resume and checkpoint callbacks: `model/resume.py`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl

from stilts import jobstate
from stilts.data.datamodule import TaskDataModule
from stilts.model.module import StiltsModule


class ReportProgress(pl.Callback):
    """The stage and optimizer step in the sweep job's record (`stilts.sweep status`)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.is_global_zero and jobstate.step_due(self.stage):
            steps = trainer.estimated_stepping_batches
            jobstate.training_step(self.stage, trainer.global_step, int(steps) if math.isfinite(steps) else None)


class BestDevResults(pl.Callback):
    """The dev metrics, scores and predictions of the best evaluation of a fit (strictly better than
    every earlier one, as ModelCheckpoint keeps the first of equal scores). When the selection ran on
    the whole dev sets, they are what validating the reloaded best weights would compute again, so
    that second validation is skipped."""

    def __init__(self, members: Mapping[str, TaskDataModule]) -> None:
        self.members = members
        self.step: int | None = None
        self._score = -math.inf
        self._saved: tuple[Any, Any, dict[str, Any]] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        score = trainer.callback_metrics.get("val/score")
        if trainer.state.fn != "fit" or trainer.sanity_checking or score is None or not float(score) > self._score:
            return
        self._score, self.step = float(score), trainer.global_step
        # Each evaluation replaces these values (never mutates them): shallow copies keep this one's.
        self._saved = (dict(pl_module.results["val"]), dict(pl_module.scores["val"]),
                       {name: dict(member.predictions["val"]) for name, member in self.members.items()})

    def restore(self, module: StiltsModule) -> None:
        results, scores, predictions = self._saved
        module.results["val"], module.scores["val"] = results, scores
        for name, member in self.members.items():
            member.predictions["val"] = predictions[name]
