"""Fitting one stage: the Trainer, its loggers and checkpoints, exact resume, export.

A stage saves a resume checkpoint every `train.checkpoint_every_n_steps` optimizer steps (model,
optimizer, scheduler, loop and loader position, RNG state; written atomically with a checksum). A
rerun after a crash resumes from it and ends with exactly the weights an uninterrupted run gets.
Model selection keeps the best dev epoch as weights only. Once the encoder and head are exported
as safetensors, the Lightning checkpoints are removed unless `keep_checkpoints=true`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only
from safetensors.torch import save

from stilts import jobstate
from stilts.store import stages
from stilts.data.datamodule import TaskDataModule
from stilts.data.mixture import MixtureDataModule, MixtureSettings
from stilts.data.multitask import common_accumulation
from stilts.data.featurize import FeaturizeSettings
from stilts.errors import DivergedError, StiltsError
from stilts.eval.qa import Answer
from stilts.files import apply_umask_modes, atomic_output, read_json, replace_folder, write_json_atomic, write_text_atomic
from stilts.loggers import CSVLogger
from stilts.model.encoder import load_encoder, load_mlm_head, load_tokenizer
from stilts.model.heads import build_head
from stilts.model.module import OptimSettings, StiltsModule
from stilts.model.resume import (AtomicCheckpointIO, ExactResume, ResumeCheckpoint, SelectionLog, checkpoint_intact,
                                 checkpoint_step)
from stilts.store.stages import Stage, StageTask
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


def log_run(cfg: DictConfig, results: Mapping[str, Any], run_name: str) -> None:
    """W&B only: one run per pipeline run (job_type "run") with the composed config, the
    per-language table, the average and the XTREME score as summary values, and whether each stage
    was reused from the stage store or trained by this run."""
    for factory in (instantiate(node) for node in (cfg.logger or {}).values()):
        if not issubclass(getattr(factory, "func", factory), WandbLogger):
            continue
        logger = factory(name=run_name, job_type="run")
        names = list(dict.fromkeys(name for values in results["metrics"].values() for name in values))
        rows = [[language, results["scores"].get(language), *(values.get(name) for name in names)]
                for language, values in results["metrics"].items()]
        logger.log_table("metrics", columns=["language", "score", *names], data=rows)
        logger.experiment.config.update(results["config"], allow_val_change=True)
        logger.experiment.summary.update({
            "score": results["score"], **{f"average/{name}": value for name, value in results["average"].items()},
            **{f"stages/{name}/reused": facts["reused"] for name, facts in results["stages"].items()},
            "reused_stages": sum(facts["reused"] for facts in results["stages"].values()),
        })
        finish_loggers([logger], failed=False)


def make_datamodule(cfg: DictConfig, task: StageTask, tokenizer, train: bool, languages: Sequence[str] = (),
                    labels: Sequence[str] | None = None) -> TaskDataModule:
    settings = FeaturizeSettings.from_settings(task.settings)
    return TaskDataModule(
        task.spec, tokenizer, source=cfg.data.source, root=cfg.data.root, cache_dir=cfg.data.cache_dir,
        settings=settings, micro_batch_size=cfg.train.micro_batch_size, eval_batch_size=cfg.train.eval_batch_size,
        train=train, eval_languages=languages, eval_split=task.settings.get("eval_split", "test"),
        num_workers=cfg.data.num_workers, labels=labels, seed=cfg.seed, train_languages=task.languages,
        # A dual encoder's negatives are its micro-batch: keep them random, as XTREME's recipe does.
        group_by_length=bool(cfg.train.get("group_by_length", True)) and task.spec.head != "dual_encoder",
    )


def make_trainer(cfg: DictConfig, stage: Stage, loggers: list[Any], callbacks: list[Any], **overrides: Any) -> pl.Trainer:
    factory = instantiate(cfg.trainer)
    if len(stage.tasks) > 1 and cfg.trainer.get("strategy") == "ddp":
        # A multi-task step uses one head: the others get no gradient, which plain DDP rejects.
        overrides.setdefault("strategy", "ddp_find_unused_parameters_true")
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():  # stop signals are StopSignals' (and submitit's requeue), not Lightning's too
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return factory(logger=loggers or False, callbacks=callbacks, default_root_dir=str(stage.directory),
                   plugins=plugins, **overrides)


def write_predictions(spec: TaskSpec, datamodule: TaskDataModule, stage: str, folder: Path) -> None:
    """Each evaluation set's predictions in the official format, e.g. predictions/test-de.tsv; for
    SQuAD v2 also the no-answer odds (dev-en.null_odds.json, the official script's --na-prob-file)."""
    for eval_set in datamodule.val_sets if stage == "val" else datamodule.test_sets:
        predictions = datamodule.predictions[stage][eval_set.name]
        suffix, text = render_predictions(spec, eval_set.examples, predictions)
        write_text_atomic(folder / f"{eval_set.split}-{eval_set.name}{suffix}", text)
        if predictions and all(isinstance(answer, Answer) for answer in predictions):  # SQuAD v2's --na-prob-file
            odds = {example["id"]: answer.null_odds for example, answer in zip(eval_set.examples, predictions)}
            write_json_atomic(folder / f"{eval_set.split}-{eval_set.name}.null_odds.json", odds)


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


def _export(stage: Stage, module: StiltsModule, tokenizer, members: Mapping[str, TaskDataModule],
            summary: Mapping[str, Any], keep_checkpoints: bool) -> None:
    """Encoder as safetensors (loadable with from_pretrained), one head per task apart, dev
    predictions, each written under a temporary name first; then stage.json with every file's
    checksum; then the Lightning checkpoints go (unless kept)."""
    for name, member in members.items():
        folder = stage.directory / "predictions" / (name if stage.mixture is not None else "")
        write_predictions(member.spec, member, "val", folder)
    staging = stage.directory / f".encoder-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    module.encoder.save_pretrained(staging, safe_serialization=True)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # featurizing left truncation and padding set: the saved file must not depend on it
        backend.no_truncation()
        backend.no_padding()
    tokenizer.save_pretrained(staging)
    apply_umask_modes(staging)  # safetensors writes 0600: the lab must read a shared store
    replace_folder(staging, stage.encoder_dir)
    for name, head in module.heads.items():
        state = head.exported_state() if hasattr(head, "exported_state") else head.state_dict()
        with atomic_output(stage.head_file(name)) as stream:
            stream.write(save({k: v.contiguous() for k, v in state.items()}))
    stages.publish(stage.directory, summary)
    if not keep_checkpoints:
        shutil.rmtree(stage.directory / stages.CHECKPOINTS, ignore_errors=True)


def _epochs(cfg: DictConfig, task: StageTask) -> int:
    return cfg.train.max_epochs if cfg.train.max_epochs is not None else task.settings["epochs"]


def _effective(cfg: DictConfig, task: StageTask) -> int:
    return cfg.train.effective_batch_size or task.settings["effective_batch_size"]


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


def _micro_limit(cfg: DictConfig, task: StageTask) -> int:
    """The largest micro-batch a task may use. A dual encoder's negatives are the other pairs of its
    micro-batch, so its micro-batch is the task's `pairs_per_batch` (a number-changing setting),
    never the hardware's `train.micro_batch_size`; the effective batch must be a multiple of it."""
    if task.spec.head != "dual_encoder":
        return cfg.train.micro_batch_size
    pairs, effective = task.settings.get("pairs_per_batch"), _effective(cfg, task)
    if not isinstance(pairs, int) or isinstance(pairs, bool) or pairs < 2:
        raise StiltsError(f"{task.spec.name}: pairs_per_batch must be an integer >= 2 (each query's in-batch "
                          f"negatives are the other pairs of its micro-batch), not {pairs!r}")
    if effective % pairs:
        raise StiltsError(f"{task.spec.name}: the effective batch {effective} is not a multiple of pairs_per_batch "
                          f"{pairs}; change effective_batch_size or pairs_per_batch")
    return pairs


def _stage_data(cfg: DictConfig, stage: Stage, tokenizer, world_size: int
                ) -> tuple[TaskDataModule | MixtureDataModule, dict[str, TaskDataModule], dict[str, Any], int]:
    """(data module, its task data modules by task, batch layout, Lightning epochs). A single task
    trains epochs over its data; a mixture trains `rounds` rounds of its step schedule with one
    accumulation count for all its tasks, so every task keeps its own effective batch."""
    members = {name: make_datamodule(cfg, task, tokenizer, train=True) for name, task in stage.tasks.items()}
    if stage.mixture is None:
        (name, member), = members.items()
        limit = _micro_limit(cfg, stage.tasks[name])
        micro, accumulation = batch_layout(_effective(cfg, stage.tasks[name]), limit, world_size)
        if member.spec.head == "dual_encoder" and micro != limit:
            raise StiltsError(f"{name}: {world_size} processes leave each a share of the effective batch that is not a "
                              f"multiple of pairs_per_batch {limit}; raise effective_batch_size or use fewer devices")
        member.micro_batch_size = micro
        member.step_examples = _effective(cfg, stage.tasks[name])
        layout = {"micro_batch_size": micro, "accumulate_grad_batches": accumulation, "world_size": world_size}
        return member, members, layout, _epochs(cfg, stage.tasks[name])
    effective = {name: _effective(cfg, task) for name, task in stage.tasks.items()}
    shares = {}
    for name, size in effective.items():
        if size % world_size:
            raise StiltsError(f"{stage.label}: the effective batch {size} of {name} cannot be split evenly over "
                              f"{world_size} processes; change train.effective_batch_size or the device count")
        shares[name] = size // world_size
    accumulation = common_accumulation(shares, cfg.train.micro_batch_size)
    for name, member in members.items():
        member.micro_batch_size = shares[name] // accumulation
    epochs = {name: _epochs(cfg, task) for name, task in stage.tasks.items()}
    mixture = stage.mixture
    settings = MixtureSettings(
        sampler=mixture["sampler"], temperature=mixture["temperature"], examples_cap=mixture["examples_cap"],
        weights=mixture["weights"], max_steps=mixture["max_steps"], rounds=mixture["rounds"] or max(epochs.values()),
        selection=mixture["selection"] or {})
    datamodule = MixtureDataModule(members, epochs, effective, settings, cfg.seed, accumulation, cfg.data.num_workers)
    layout = {"micro_batch_size": {name: m.micro_batch_size for name, m in members.items()},
              "accumulate_grad_batches": accumulation, "world_size": world_size}
    return datamodule, members, layout, settings.rounds


def _heads(stage: Stage, members: Mapping[str, TaskDataModule], encoder, pretrained: str) -> dict[str, Any]:
    """A fresh head per task; an MLM task starts from the pretrained model's own LM head."""
    return {name: load_mlm_head(pretrained, encoder) if task.spec.head == "mlm"
            else build_head(task.spec.head, encoder.config.hidden_size, len(members[name].labels))
            for name, task in stage.tasks.items()}


def _task_facts(stage: Stage, module: StiltsModule, members: Mapping[str, TaskDataModule]) -> dict[str, Any]:
    """Per task: head, domain, languages, labels and dev metrics per language (stage.json)."""
    facts = {}
    for name, task in stage.tasks.items():
        prefix = f"{name}/" if stage.mixture is not None else ""
        dev = {key[len(prefix):]: dict(value) for key, value in module.results["val"].items() if key.startswith(prefix)}
        scores = {key[len(prefix):]: value for key, value in module.scores["val"].items() if key.startswith(prefix)}
        facts[name] = {"head": task.spec.head, "domain": task.spec.domain, "languages": list(task.languages),
                       "labels": members[name].labels, "dev_metrics": dev,
                       "dev_score": members[name].selection_score(scores)}
    return facts


def fit_stage(cfg: DictConfig, stage: Stage, encoder_source: str, pretrained: str, run_name: str) -> None:
    """Train one stage (resuming when a checkpoint exists) and export it (rank 0)."""
    log.info("Stage %s (%s): training %s from %s into %s", stage.name, stage.role, " + ".join(stage.tasks),
             encoder_source, stage.directory)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    tokenizer, encoder = load_tokenizer(encoder_source), load_encoder(encoder_source)
    if cfg.model.get("gradient_checkpointing"):  # non-reentrant: dropout masks are replayed, numbers unchanged
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # The world size is known once a trainer has resolved its devices ("auto", multi-node).
    world_size = make_trainer(cfg, stage, [], []).world_size
    datamodule, members, layout, epochs = _stage_data(cfg, stage, tokenizer, world_size)
    lr = stage.settings.get("lr") if stage.mixture is None else stage.mixture["lr"]
    module = StiltsModule(encoder, _heads(stage, members, encoder, pretrained),
                          OptimSettings(lr=lr or cfg.train.lr, weight_decay=cfg.train.weight_decay,
                                        warmup_ratio=cfg.train.warmup_ratio))
    folder = stage.directory / stages.CHECKPOINTS
    best = ModelCheckpoint(dirpath=folder, filename="best", monitor="val/score", mode="max", save_top_k=1,
                           save_weights_only=True, enable_version_counter=False)
    exact = ExactResume()
    log.info("Stage %s: batch layout %s", stage.name, layout)
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
    every = cfg.train.get("eval_every_steps")
    selection = SelectionLog()
    best_results = BestDevResults(members)
    callbacks = [exact, best, ResumeCheckpoint(folder, cfg.train.checkpoint_every_n_steps, every), selection,
                 best_results, ReportProgress(stage.name)]
    overrides: dict[str, Any] = {}
    if every:  # validation every N optimizer steps, counted across epochs (in micro-batches)
        overrides = {"val_check_interval": every * layout["accumulate_grad_batches"], "check_val_every_n_epoch": None}
    if cfg.train.get("patience"):
        callbacks.append(EarlyStopping(monitor="val/score", mode="max", patience=cfg.train.patience,
                                       check_on_train_epoch_end=False))
    for member in members.values():
        member.eval_subset = cfg.train.get("eval_subset")
    trainer = make_trainer(cfg, stage, loggers, callbacks, max_epochs=epochs,
                           accumulate_grad_batches=layout["accumulate_grad_batches"], **overrides)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
        if best.best_model_path:  # model selection on the dev sets
            module.load_state_dict(torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"])
        chosen = selection.best()
        if cfg.train.get("eval_subset") is None and chosen is not None and best_results.step == chosen["step"]:
            best_results.restore(module)  # selected on the whole dev sets: its results are known
        else:  # selected on dev subsets, or the best evaluation came before a resume
            trainer.validate(module, datamodule=datamodule, verbose=False)
    except DivergedError as error:
        finish_loggers(loggers, failed=True)
        kept = f"; the last good checkpoint stays in {folder}" if (folder / "last.ckpt").exists() else ""
        raise DivergedError(f"stage {stage.name} ({' + '.join(stage.tasks)}) diverged: {error}; the stage is not "
                            f"marked finished{kept}. Lower train.lr (or the task's lr)") from None
    except BaseException:
        finish_loggers(loggers, failed=True)
        raise
    finish_loggers(loggers, failed=False)
    if rank_zero_only.rank != 0:
        return
    real, total = module.token_counts.tolist()
    summary = {
        "task": stage.label, "role": stage.role, "key": stage.key, "encoder_source": encoder_source,
        "tasks": _task_facts(stage, module, members),
        "dev_score": datamodule.selection_score(dict(module.scores["val"])),
        "mixture": dict(stage.mixture, **datamodule.plan) if stage.mixture is not None else None,
        "train_real_token_fraction": real / total if total else None,
        "global_steps": trainer.global_step, "world_size": world_size, "batch_layout": layout,
        "resumed_from_steps": resumes,
        "selection": {"eval_every_steps": every, "eval_subset": cfg.train.get("eval_subset"),
                      "patience": cfg.train.get("patience"), "evaluations": selection.evaluations,
                      "best": selection.best()},
    }
    _export(stage, module, tokenizer, members, summary, keep_checkpoints=bool(cfg.keep_checkpoints))
