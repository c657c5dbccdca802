"""The Lightning Trainer of a stage (or of an evaluation), from `cfg.trainer`, with atomic checkpoint
writes and SLURM's stop signals left to stilts (`model/resume.py`) and submitit."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.plugins.environments import SLURMEnvironment

from stilts.model.resume import AtomicCheckpointIO
from stilts.store.stages import Stage


def _no_tip(record: logging.LogRecord) -> bool:
    return "Tip:" not in record.getMessage()


def _quiet_lightning() -> None:
    """Evaluation gathers every rank's predictions and drops the sampler's duplicates
    (StiltsModule._score), so Lightning's DistributedSampler warning does not apply; nor do its tips."""
    warnings.filterwarnings("ignore", message=r".*Using `DistributedSampler` with the dataloaders.*")
    tips = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if _no_tip not in tips.filters:
        tips.addFilter(_no_tip)


def make_trainer(cfg: DictConfig, stage: Stage, loggers: list[Any], callbacks: list[Any], **overrides: Any) -> pl.Trainer:
    _quiet_lightning()
    factory = instantiate(cfg.trainer)
    if len(stage.tasks) > 1 and cfg.trainer.get("strategy") == "ddp":
        # A multi-task step uses one head: the others get no gradient, which plain DDP rejects.
        overrides.setdefault("strategy", "ddp_find_unused_parameters_true")
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():  # stop signals are StopSignals' (and submitit's requeue), not Lightning's too
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return factory(logger=loggers or False, callbacks=callbacks, default_root_dir=str(stage.directory),
                   plugins=plugins, **overrides)
