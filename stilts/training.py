"""Fitting one stage: the Trainer, its loggers and checkpoints, exact resume, export.

A stage saves a resume checkpoint every `train.checkpoint_every_n_steps` optimizer steps (model,
optimizer, scheduler, loop and loader position, RNG state; written atomically with a checksum). A
rerun after a crash resumes from it and ends with exactly the weights an uninterrupted run gets.
Model selection keeps the best dev epoch as weights only. Once the encoder and head are exported
as safetensors, the Lightning checkpoints are removed unless `keep_checkpoints=true`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from safetensors.torch import save

from stilts import stages
from stilts.data.datamodule import TaskDataModule
from stilts.data.featurize import FeaturizeSettings
from stilts.errors import DivergedError, StiltsError
from stilts.files import atomic_output, read_json, replace_folder, write_json_atomic, write_text_atomic
from stilts.loggers import CSVLogger
from stilts.model.encoder import load_encoder, load_tokenizer
from stilts.model.heads import build_head
from stilts.model.module import OptimSettings, StiltsModule
from stilts.model.resume import AtomicCheckpointIO, ExactResume, ResumeCheckpoint, checkpoint_intact, checkpoint_step
from stilts.stages import Stage
from stilts.tasks.predictions import render_predictions
from stilts.tasks.spec import TaskSpec

log = logging.getLogger(__name__)
LAYOUT_FILE = "layout.json"  # the batch layout a resume checkpoint was made with
RESUMES_FILE = "resumes.json"  # the steps this stage was resumed from


def batch_layout(effective: int, micro_batch_size: int, world_size: int) -> tuple[int, int]:
    """(per-device micro-batch, accumulation steps) that make exactly the effective batch: the
    largest micro-batch up to `micro_batch_size` that divides the per-process share."""
    if effective % world_size:
        raise StiltsError(f"the effective batch {effective} cannot be split evenly over {world_size} processes; "
                          "change train.effective_batch_size (or the task's effective_batch_size) or the device count")
    share = effective // world_size
    micro = max(size for size in range(1, min(micro_batch_size, share) + 1) if share % size == 0)
    return micro, share // micro


def make_loggers(cfg: DictConfig, version: str, job_type: str, run_name: str,
                 resume_step: int | None = None) -> list[Any]:
    """One logger instance per stage: CSV/TensorBoard version = stage, W&B run per stage (job_type =
    role). On resume, CSV keeps and TensorBoard purges from `resume_step` (the replayed steps)."""
    loggers = []
    for factory in (instantiate(node) for node in (cfg.logger or {}).values()):
        kind = getattr(factory, "func", factory)
        if issubclass(kind, WandbLogger):
            loggers.append(factory(name=f"{run_name}/{version}", job_type=job_type))
        elif issubclass(kind, CSVLogger):
            loggers.append(factory(version=version, keep_rows_before_step=resume_step))
        elif issubclass(kind, TensorBoardLogger) and resume_step is not None:
            loggers.append(factory(version=version, purge_step=resume_step))
        else:
            loggers.append(factory(version=version))
    return loggers


def finish_loggers(loggers: Sequence[Any], failed: bool) -> None:
    """Close W&B runs so sweep jobs never merge into one run; a crash marks the run failed."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and rank_zero_only.rank == 0:
            logger.experiment.finish(exit_code=1 if failed else 0)


def make_datamodule(cfg: DictConfig, stage: Stage, tokenizer, train: bool, languages: Sequence[str] = (),
                    labels: Sequence[str] | None = None) -> TaskDataModule:
    settings = FeaturizeSettings(**{f.name: stage.settings[f.name] for f in fields(FeaturizeSettings)
                                    if f.name in stage.settings})
    return TaskDataModule(
        stage.spec, tokenizer, source=cfg.data.source, root=cfg.data.root, cache_dir=cfg.data.cache_dir,
        settings=settings, micro_batch_size=cfg.train.micro_batch_size, eval_batch_size=cfg.train.eval_batch_size,
        train=train, eval_languages=languages, eval_split=stage.settings.get("eval_split", "test"),
        num_workers=cfg.data.num_workers, labels=labels, seed=cfg.seed,
    )


def make_trainer(cfg: DictConfig, stage: Stage, loggers: list[Any], callbacks: list[Any], **overrides: Any) -> pl.Trainer:
    factory = instantiate(cfg.trainer)
    return factory(logger=loggers or False, callbacks=callbacks, default_root_dir=str(stage.directory),
                   plugins=[AtomicCheckpointIO()], **overrides)


def write_predictions(spec: TaskSpec, datamodule: TaskDataModule, stage: str, folder: Path) -> None:
    """Each evaluation set's predictions in the official format, e.g. predictions/test-de.tsv."""
    for eval_set in datamodule.val_sets if stage == "val" else datamodule.test_sets:
        suffix, text = render_predictions(spec, eval_set.examples, datamodule.predictions[stage][eval_set.name])
        write_text_atomic(folder / f"{eval_set.split}-{eval_set.name}{suffix}", text)


def _resume_point(stage: Stage, layout: Mapping[str, int]) -> Path | None:
    """The stage's resume checkpoint when it is intact and was made with the same batch layout;
    a damaged or mismatching one is set aside (kept, renamed) and the stage starts over."""
    folder = stage.directory / stages.CHECKPOINTS
    last = folder / "last.ckpt"
    if not last.exists():
        return None
    problem = None
    if not checkpoint_intact(last):
        problem = "is damaged (size or checksum differ from what was written)"
    elif read_json(folder / LAYOUT_FILE) != dict(layout):
        problem = f"was made with another batch layout ({read_json(folder / LAYOUT_FILE)}, now {dict(layout)})"
    if problem is None:
        return last
    log.warning("Stage %s: %s %s; training the stage from the start", stage.name, last, problem)
    stages.set_aside(last)
    return None


def _export(stage: Stage, module: StiltsModule, tokenizer, datamodule: TaskDataModule,
            summary: Mapping[str, Any], keep_checkpoints: bool) -> None:
    """Encoder as safetensors (loadable with from_pretrained), head apart, dev predictions, each
    written under a temporary name first; then stage.json with every file's checksum; then the
    Lightning checkpoints go (unless kept)."""
    write_predictions(stage.spec, datamodule, "val", stage.directory / "predictions")
    staging = stage.directory / f".encoder-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    module.encoder.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    replace_folder(staging, stage.encoder_dir)
    with atomic_output(stage.directory / "head.safetensors") as stream:
        stream.write(save({k: v.contiguous() for k, v in module.head.state_dict().items()}))
    stages.publish(stage.directory, summary)
    if not keep_checkpoints:
        shutil.rmtree(stage.directory / stages.CHECKPOINTS, ignore_errors=True)


def fit_stage(cfg: DictConfig, stage: Stage, encoder_source: str, run_name: str) -> None:
    """Train one stage (resuming when a checkpoint exists) and export it (rank 0)."""
    log.info("Stage %s (%s): training %s from %s into %s", stage.name, stage.role, stage.spec.name, encoder_source,
             stage.directory)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    tokenizer, encoder = load_tokenizer(encoder_source), load_encoder(encoder_source)
    datamodule = make_datamodule(cfg, stage, tokenizer, train=True)
    head = build_head(stage.spec.head, encoder.config.hidden_size, len(datamodule.labels))
    lr = stage.settings.get("lr") or cfg.train.lr
    module = StiltsModule(encoder, head, OptimSettings(lr=lr, weight_decay=cfg.train.weight_decay,
                                                       warmup_ratio=cfg.train.warmup_ratio))
    folder = stage.directory / stages.CHECKPOINTS
    best = ModelCheckpoint(dirpath=folder, filename="best", monitor="val/score", mode="max", save_top_k=1,
                           save_weights_only=True, enable_version_counter=False)
    exact = ExactResume()
    epochs = cfg.train.max_epochs if cfg.train.max_epochs is not None else stage.settings["epochs"]
    # The world size is known once a trainer has resolved its devices ("auto", multi-node).
    world_size = make_trainer(cfg, stage, [], []).world_size
    effective = cfg.train.effective_batch_size or stage.settings["effective_batch_size"]
    micro, accumulation = batch_layout(effective, cfg.train.micro_batch_size, world_size)
    datamodule.micro_batch_size = micro
    layout = {"micro_batch_size": micro, "accumulate_grad_batches": accumulation, "world_size": world_size}
    log.info("Stage %s: effective batch %d = micro-batch %d x %d accumulation x %d process(es)", stage.name,
             effective, micro, accumulation, world_size)
    resume_from = _resume_point(stage, layout)
    resumes = (read_json(folder / RESUMES_FILE) or []) if resume_from else []
    resume_step = None
    if resume_from is not None:
        resume_step = checkpoint_step(resume_from)
        resumes = [*resumes, resume_step]
        log.info("Stage %s: resuming from %s (step %d)", stage.name, resume_from, resume_step)
    if rank_zero_only.rank == 0:
        write_json_atomic(folder / LAYOUT_FILE, layout)
        if resume_from is not None:
            write_json_atomic(folder / RESUMES_FILE, resumes)
    loggers = make_loggers(cfg, stage.name, stage.role, run_name, resume_step)
    callbacks = [exact, best, ResumeCheckpoint(folder, cfg.train.checkpoint_every_n_steps)]
    trainer = make_trainer(cfg, stage, loggers, callbacks, max_epochs=epochs, accumulate_grad_batches=accumulation)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
        if best.best_model_path:  # model selection on the English dev set
            module.load_state_dict(torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"])
        trainer.validate(module, datamodule=datamodule, verbose=False)
    except DivergedError as error:
        finish_loggers(loggers, failed=True)
        kept = f"; the last good checkpoint stays in {folder}" if (folder / "last.ckpt").exists() else ""
        raise DivergedError(f"stage {stage.name} ({stage.spec.name}) diverged: {error}; the stage is not marked "
                            f"finished{kept}. Lower train.lr (or the task's lr)") from None
    except BaseException:
        finish_loggers(loggers, failed=True)
        raise
    finish_loggers(loggers, failed=False)
    if rank_zero_only.rank != 0:
        return
    real, total = module.token_counts.tolist()
    summary = {
        "task": stage.spec.name, "role": stage.role, "key": stage.key, "encoder_source": encoder_source,
        "settings": stage.settings, "labels": datamodule.labels, "dev_language": stage.spec.train_language,
        "dev_metrics": module.results["val"][stage.spec.train_language],
        "dev_score": module.scores["val"][stage.spec.train_language],
        "train_real_token_fraction": real / total if total else None,
        "global_steps": trainer.global_step, "world_size": world_size, "batch_layout": layout,
        "resumed_from_steps": resumes,
    }
    _export(stage, module, tokenizer, datamodule, summary, keep_checkpoints=bool(cfg.keep_checkpoints))
