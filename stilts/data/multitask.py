"""Multi-task batches: each optimizer step trains one task, drawn by a sampler with jiant's semantics.

The schedule of tasks is a function of (seed, round) alone, so every DDP rank draws the same task
at every step and a resumed stage replays exactly the steps it would have taken. Each task reads
its own endless stream of shuffled examples (a fresh permutation per pass over its data, split
over ranks as DistributedSampler does); a step's micro-batches (gradient accumulation) all come
from the step's task.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from stilts.errors import StiltsError

SAMPLERS = ("uniform", "proportional", "temperature", "specified")


def task_probabilities(sampler: str, sizes: Mapping[str, int], *, temperature: float = 1.0,
                       examples_cap: int | None = None, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """The probability of drawing each task at a step, as jiant's multi-task samplers define it:
    uniform 1/T; proportional N_t / sum N; temperature min(N_t, cap)^(1/T) normalised;
    specified: the given weights normalised (N_t = the task's training examples)."""
    names = list(sizes)
    if sampler == "uniform":
        raw = np.ones(len(names))
    elif sampler == "proportional":
        raw = np.array([sizes[name] for name in names], dtype=float)
    elif sampler == "temperature":
        counts = np.array([sizes[name] for name in names], dtype=float)
        if examples_cap is not None:
            counts = np.minimum(counts, examples_cap)
        raw = counts ** (1.0 / temperature)
    elif sampler == "specified":
        missing = [name for name in names if name not in (weights or {})]
        if missing:
            raise StiltsError(f"sampler 'specified' needs a weight for every task; missing {missing}")
        raw = np.array([float(weights[name]) for name in names])
    else:
        raise StiltsError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if raw.sum() <= 0:
        raise StiltsError(f"sampler {sampler!r}: the task weights sum to {raw.sum():g}; give at least one positive weight")
    return dict(zip(names, (raw / raw.sum()).tolist()))


@dataclass(frozen=True)
class Schedule:
    """Which task each optimizer step trains: `rounds` rounds (a dev evaluation after each) of
    `steps_per_round` steps, tasks drawn i.i.d. with `probabilities` from a generator seeded by
    (seed, round)."""

    probabilities: tuple[float, ...]
    steps_per_round: int
    rounds: int
    seed: int

    def tasks(self, round_: int) -> np.ndarray:
        """Task index of every step of one round (the same on every rank and on every rerun)."""
        rng = np.random.default_rng([self.seed, round_])
        return rng.choice(len(self.probabilities), size=self.steps_per_round, p=np.asarray(self.probabilities))

    def steps_before(self, round_: int) -> np.ndarray:
        """Steps each task took in the rounds before `round_`."""
        counts = np.zeros(len(self.probabilities), dtype=np.int64)
        for earlier in range(round_):
            counts += np.bincount(self.tasks(earlier), minlength=len(self.probabilities))
        return counts


def plan_steps(step_counts: Mapping[str, int], epochs: Mapping[str, int], max_steps: int | None,
               rounds: int) -> tuple[int, int]:
    """(total steps, steps per round): `max_steps`, or jiant's default budget, the sum over tasks of
    epochs x optimizer steps per epoch; rounded up to whole rounds."""
    total = max_steps or sum(epochs[name] * step_counts[name] for name in step_counts)
    per_round = math.ceil(total / rounds)
    return per_round * rounds, per_round


class TaskStream:
    """One task's examples for one rank: pass p is a permutation seeded by (seed + p), padded and
    split over ranks like DistributedSampler; micro-batch j is the next `micro` items of the stream
    (a micro-batch may run on into the next pass, so every step has exactly its batch size)."""

    def __init__(self, size: int, micro: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.micro, self.seed, self.rank, self.world_size = size, micro, seed, rank, world_size
        self.per_rank = math.ceil(size / world_size)
        self._orders: dict[int, list[int]] = {}

    def _order(self, pass_: int) -> list[int]:
        if pass_ not in self._orders:
            generator = torch.Generator().manual_seed(self.seed + pass_)
            order = torch.randperm(self.size, generator=generator).tolist()
            order += order[: self.per_rank * self.world_size - self.size]
            self._orders = {pass_: order[self.rank::self.world_size]}  # keep only the current pass
        return self._orders[pass_]

    def batch(self, j: int) -> list[tuple[int, int]]:
        """(example index, pass) of every item of micro-batch j."""
        items = range(j * self.micro, (j + 1) * self.micro)
        return [(self._order(item // self.per_rank)[item % self.per_rank], item // self.per_rank) for item in items]


@dataclass
class Member:
    """One task of a mixture as the batches see it."""

    name: str
    features: Any  # a datasets.Dataset of model inputs
    collate: Callable[..., dict[str, Any]]  # (features, passes) -> batch
    stream: TaskStream


class MixtureBatches(Dataset):
    """Item (round, i) is the i-th micro-batch of a round, collated, with its task's name under
    "task". Index-addressable, so the loader can resume mid-round and use worker processes."""

    def __init__(self, members: Sequence[Member], schedule: Schedule, accumulation: int) -> None:
        self.members, self.schedule, self.accumulation = list(members), schedule, accumulation
        self._round: int | None = None
        self._plan: list[tuple[int, int]] = []  # per step: (task index, the task's step number)

    def __len__(self) -> int:
        return self.schedule.steps_per_round * self.accumulation

    def _plan_round(self, round_: int) -> None:
        counts = self.schedule.steps_before(round_)
        self._plan = []
        for task in self.schedule.tasks(round_).tolist():
            self._plan.append((task, int(counts[task])))
            counts[task] += 1
        self._round = round_

    def __getitem__(self, index: tuple[int, int]) -> dict[str, Any]:
        round_, i = index
        if self._round != round_:
            self._plan_round(round_)
        task, step = self._plan[i // self.accumulation]
        member = self.members[task]
        items = member.stream.batch(step * self.accumulation + i % self.accumulation)
        rows = [member.features[example] for example, _ in items]
        batch = member.collate(rows, passes=[pass_ for _, pass_ in items])
        batch["task"] = member.name
        return batch


class RoundSampler(DistributedSampler):
    """Hands out (round, i) for the micro-batches of the current round (Lightning sets the round as
    the epoch). A DistributedSampler, so Lightning leaves it alone under DDP: the batches are
    already this rank's. `skip` drops the first items of the next round (resume)."""

    def __init__(self, batches: MixtureBatches) -> None:
        super().__init__(batches, num_replicas=1, rank=0, shuffle=False)
        self.skip = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip, self.skip = self.skip, 0
        return iter([(self.epoch, i) for i in range(skip, len(self.dataset))])


def common_accumulation(shares: Mapping[str, int], micro_batch_size: int) -> int:
    """The smallest accumulation count that splits every task's per-process batch share into
    equal micro-batches of at most `micro_batch_size` (one count for the whole stage, as in jiant)."""
    for accumulation in range(1, max(shares.values()) + 1):
        if all(share % accumulation == 0 and share // accumulation <= micro_batch_size for share in shares.values()):
            return accumulation
    raise StiltsError(
        f"the tasks' batch sizes per process {dict(shares)} have no common accumulation count with micro-batches of "
        f"at most {micro_batch_size}; give the tasks effective batch sizes with a common divisor "
        "(e.g. train.effective_batch_size=32) or raise train.micro_batch_size")
