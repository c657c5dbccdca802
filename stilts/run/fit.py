"""Fitting one stage: seeded, resumed from its last checkpoint when one exists, the best dev
evaluation selected, then exported (rank 0).

A stage saves a resume checkpoint every `train.checkpoint_every_n_steps` optimizer steps (model,
optimizer, scheduler, loop and loader position, RNG state; written atomically with a checksum). A
rerun after a crash resumes from it and ends with exactly the weights an uninterrupted run gets.
Model selection keeps the best dev epoch as weights only. Once the encoder and head are exported
as safetensors, the Lightning checkpoints are removed unless `keep_checkpoints=true`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from stilts.data.datamodule import TaskDataModule
from stilts.errors import DivergedError
from stilts.store.files import read_json, write_json_atomic
from stilts.model.adapters import add_adapter, trainable_parameters
from stilts.model.encoder import load_encoder, load_mlm_head, load_tokenizer
from stilts.heads import head_of
from stilts.model.module import OptimSettings, StiltsModule
from stilts.model.resume import ExactResume, ResumeCheckpoint, SelectionLog, checkpoint_intact, checkpoint_step
from stilts.run.callbacks import BestDevResults, ReportProgress
from stilts.run.data import stage_data
from stilts.run.export import export_stage
from stilts.run.loggers import finish_loggers, make_loggers
from stilts.run.trainer import make_trainer
from stilts.store import stages
from stilts.store.stages import EncoderSource, Stage

log = logging.getLogger(__name__)
LAYOUT_FILE = "layout.json"  # the batch layout a resume checkpoint was made with
RESUMES_FILE = "resumes.json"  # the steps this stage was resumed from


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


def _heads(stage: Stage, members: Mapping[str, TaskDataModule], encoder, pretrained: str) -> dict[str, Any]:
    """A fresh head per task; an MLM task starts from the pretrained model's own LM head."""
    return {name: load_mlm_head(pretrained, encoder) if head_of(task.spec).starts_from_pretrained_lm
            else head_of(task.spec).module(encoder.config.hidden_size, len(members[name].labels))
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


def fit_stage(cfg: DictConfig, stage: Stage, pretrained: str, run_name: str) -> None:
    """Train one stage from the encoder it starts from (resuming when a checkpoint exists) and export
    it (rank 0): every weight, or a LoRA adapter on the frozen encoder (`stage.peft`)."""
    source = stage.starts_from or EncoderSource(pretrained)
    log.info("Stage %s (%s): training %s%s from %s into %s", stage.name, stage.role, " + ".join(stage.tasks),
             f" with a {stage.peft['method']} adapter" if stage.peft else "", source, stage.directory)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    tokenizer, encoder = load_tokenizer(source), load_encoder(source)
    if cfg.model.get("gradient_checkpointing"):  # non-reentrant: dropout masks are replayed, numbers unchanged
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if stage.peft is not None:
        encoder = add_adapter(encoder, stage.peft)
        trainable, total = trainable_parameters(encoder)
        log.info("Stage %s: the adapter trains %s of the encoder's %s parameters (%.2f%%)", stage.name,
                 f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    # The world size is known once a trainer has resolved its devices ("auto", multi-node).
    world_size = make_trainer(cfg, stage, [], []).world_size
    datamodule, members, layout, epochs = stage_data(cfg, stage, tokenizer, world_size)
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
        "task": stage.label, "role": stage.role, "key": stage.key, "encoder_source": str(source),
        "peft": dict(stage.peft) if stage.peft else None,
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
    export_stage(stage, module, tokenizer, members, summary, keep_checkpoints=bool(cfg.keep_checkpoints))
