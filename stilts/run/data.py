"""A stage's data: its tasks' DataModules and the batch layout that makes exactly each task's
effective batch on any number of processes (micro-batch x accumulation x world size)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from stilts.data.datamodule import TaskDataModule
from stilts.heads import FeaturizeSettings, head_of
from stilts.data.mixture import MixtureDataModule, MixtureSettings
from stilts.data.multitask import common_accumulation
from stilts.errors import StiltsError
from stilts.store.stages import Stage, StageTask


def batch_layout(effective: int, micro_batch_size: int, world_size: int) -> tuple[int, int]:
    """(per-device micro-batch, accumulation steps) that make exactly the effective batch: the
    largest micro-batch up to `micro_batch_size` that divides the per-process share."""
    if effective % world_size:
        raise StiltsError(f"the effective batch {effective} cannot be split evenly over {world_size} processes; "
                          "change train.effective_batch_size (or the task's effective_batch_size) or the device count")
    share = effective // world_size
    micro = max(size for size in range(1, min(micro_batch_size, share) + 1) if share % size == 0)
    return micro, share // micro


def make_datamodule(cfg: DictConfig, task: StageTask, tokenizer, train: bool, languages: Sequence[str] = (),
                    labels: Sequence[str] | None = None) -> TaskDataModule:
    settings = FeaturizeSettings.from_settings(task.settings)
    return TaskDataModule(
        task.spec, tokenizer, source=cfg.data.source, root=cfg.data.root, cache_dir=cfg.data.cache_dir,
        settings=settings, micro_batch_size=cfg.train.micro_batch_size, eval_batch_size=cfg.train.eval_batch_size,
        train=train, eval_languages=languages, eval_split=task.settings.get("eval_split", "test"),
        num_workers=cfg.data.num_workers, labels=labels, seed=cfg.seed, train_languages=task.languages,
        group_by_length=bool(cfg.train.get("group_by_length", True)) and head_of(task.spec).group_by_length,
    )


def _epochs(cfg: DictConfig, task: StageTask) -> int:
    return cfg.train.max_epochs if cfg.train.max_epochs is not None else task.settings["epochs"]


def _effective(cfg: DictConfig, task: StageTask) -> int:
    return cfg.train.effective_batch_size or task.settings["effective_batch_size"]


def stage_data(cfg: DictConfig, stage: Stage, tokenizer, world_size: int
                ) -> tuple[TaskDataModule | MixtureDataModule, dict[str, TaskDataModule], dict[str, Any], int]:
    """(data module, its task data modules by task, batch layout, Lightning epochs). A single task
    trains epochs over its data; a mixture trains `rounds` rounds of its step schedule with one
    accumulation count for all its tasks, so every task keeps its own effective batch."""
    members = {name: make_datamodule(cfg, task, tokenizer, train=True) for name, task in stage.tasks.items()}
    if stage.mixture is None:
        (name, member), = members.items()
        task, head = stage.tasks[name], head_of(stage.tasks[name].spec)
        limit = head.micro_batch_limit(task.spec, task.settings, _effective(cfg, task), cfg.train.micro_batch_size)
        micro, accumulation = batch_layout(_effective(cfg, task), limit, world_size)
        head.check_micro_batch(task.spec, micro, limit, world_size)
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
