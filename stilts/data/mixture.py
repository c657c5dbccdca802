"""The LightningDataModule of a multi-task stage: several tasks' data behind one encoder.

Each member is an ordinary TaskDataModule (its own featurization, cache, dev sets); this module
interleaves their training batches by the mixture's schedule, evaluates every member's dev sets,
and selects models on the weighted mean of the members' dev scores.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from stilts.data.datamodule import TaskDataModule
from stilts.data.collate import MODEL_INPUTS
from stilts.data.multitask import Member, MixtureBatches, RoundSampler, Schedule, TaskStream, plan_steps, task_probabilities
from stilts.data.sampling import ResumableDataLoader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixtureSettings:
    """How a mixture trains: the sampler and its parameters, the step budget, dev rounds, selection."""

    sampler: str = "proportional"
    temperature: float = 1.0
    examples_cap: int | None = None
    weights: Mapping[str, float] | None = None  # sampler=specified
    max_steps: int | None = None  # default: sum over tasks of epochs x steps per epoch (jiant)
    rounds: int = 1  # dev evaluations (model selection points), evenly spaced
    selection: Mapping[str, float] = field(default_factory=dict)  # task -> weight of its dev score (default 1)


class MixtureDataModule(pl.LightningDataModule):
    def __init__(self, members: Mapping[str, TaskDataModule], epochs: Mapping[str, int],
                 effective_batch_sizes: Mapping[str, int], settings: MixtureSettings, seed: int,
                 accumulation: int = 1, num_workers: int = 0) -> None:
        super().__init__()
        self.members, self.epochs, self.effective = dict(members), dict(epochs), dict(effective_batch_sizes)
        self.settings, self.seed, self.accumulation, self.num_workers = settings, seed, accumulation, num_workers
        self.plan: dict[str, Any] = {}  # what the stage trained: probabilities, steps (for stage.json)

    @property
    def labels(self) -> dict[str, list[str]]:
        return {name: member.labels for name, member in self.members.items()}

    def prepare_data(self) -> None:
        for member in self.members.values():
            member.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        for member in self.members.values():
            member.setup(stage)
            member.trainer = self.trainer  # members see whether the trainer fits (dev subsets)

    def schedule(self) -> Schedule:
        """The mixture's schedule from the members' sizes (examples for the sampler, as jiant counts
        them; features for the steps an epoch of each task takes)."""
        sizes = {name: member.train_examples for name, member in self.members.items()}
        probabilities = task_probabilities(self.settings.sampler, sizes, temperature=self.settings.temperature,
                                           examples_cap=self.settings.examples_cap, weights=self.settings.weights)
        step_counts = {name: math.ceil(len(member.train_set) / self.effective[name])
                       for name, member in self.members.items()}
        total, per_round = plan_steps(step_counts, self.epochs, self.settings.max_steps, self.settings.rounds)
        self.plan = {"sampler": self.settings.sampler, "probabilities": probabilities, "examples": sizes,
                     "steps_per_epoch": step_counts, "total_steps": total, "steps_per_round": per_round,
                     "rounds": self.settings.rounds}
        log.info("Mixture of %s: %s sampler, p = {%s}; %d steps in %d round(s)", ", ".join(self.members),
                 self.settings.sampler, ", ".join(f"{k}: {v:.3f}" for k, v in probabilities.items()), total,
                 self.settings.rounds)
        return Schedule(tuple(probabilities.values()), per_round, self.settings.rounds, self.seed)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        members = []
        for name, member in self.members.items():
            features = member.train_set.select_columns([c for c in MODEL_INPUTS if c in member.train_set.column_names])
            # Each task shuffles with a seed of its own name, so adding a task never reorders another's data.
            stream = TaskStream(len(features), member.micro_batch_size, self.seed + zlib.crc32(name.encode()), rank, world)
            members.append(Member(name, features, member.train_collator, stream))
        batches = MixtureBatches(members, self.schedule(), self.accumulation)
        return ResumableDataLoader(batches, batch_size=None, sampler=RoundSampler(batches),
                                   num_workers=self.num_workers)

    def val_dataloader(self) -> list[DataLoader]:
        """A loader per member (a batch goes through one task's head), each over all its dev sets."""
        return [member.val_dataloader() for member in self.members.values()]

    def eval_keys(self, stage: str) -> list[tuple[int, int]]:
        return [(loader, key[1]) for loader, member in enumerate(self.members.values()) for key in member.eval_keys(stage)]

    def score(self, stage: str, key: tuple[int, int],
              feature_predictions: dict[int, Any]) -> tuple[str, dict[str, float], float | None]:
        name = list(self.members)[key[0]]
        language, metrics, score = self.members[name].score(stage, (0, key[1]), feature_predictions)
        return f"{name}/{language}", metrics, score

    def selection_score(self, scores: Mapping[str, float]) -> float:
        """Weighted mean over tasks of each task's mean dev score (weights default to 1)."""
        weights = {name: float(self.settings.selection.get(name, 1.0)) for name in self.members}
        per_task = {name: self.members[name].selection_score(
            {key.split("/", 1)[1]: value for key, value in scores.items() if key.split("/", 1)[0] == name})
            for name in self.members}
        return sum(weights[name] * per_task[name] for name in per_task) / sum(weights.values())
