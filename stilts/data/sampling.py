"""Training batches in an order that depends only on (seed, epoch), and a loader that can resume
mid-epoch: after a crash, the rerun sees exactly the batches the uninterrupted run would have."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler

MEGA_BATCH_STEPS = 50  # optimizer steps' worth of examples sorted together (HF LengthGroupedSampler's mega_batch_mult)


class ResumableSampler(DistributedSampler):
    """DistributedSampler's seeded per-epoch shuffle (its own generator, so the global RNG that
    dropout draws from is never touched); `skip` drops the first samples of the next epoch pass.
    Being a DistributedSampler, Lightning leaves it in place under DDP (it already splits ranks)."""

    def __init__(self, dataset: Any, *, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


class LengthGroupedSampler(ResumableSampler):
    """Training order with little padding: per (seed, epoch), a shuffle of all features is cut into
    mega-batches of MEGA_BATCH_STEPS optimizer steps, each sorted by length and cut into steps of
    `step_examples` features; the steps are shuffled (the last, partial one stays last). A step's
    features are the same whatever the micro-batch and device count, so, as with plain shuffling,
    the batch layout never changes which examples an optimizer step sees. Each rank takes a
    contiguous share of every step (DistributedSampler's padding by repetition, in the last step)."""

    def __init__(self, dataset: Any, *, lengths: Sequence[int], step_examples: int, seed: int,
                 num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, seed=seed, num_replicas=num_replicas, rank=rank)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.step_examples = step_examples

    def _steps(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        mega = self.step_examples * MEGA_BATCH_STEPS
        steps = []
        for start in range(0, len(order), mega):
            chunk = order[start:start + mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            steps += [chunk[i:i + self.step_examples] for i in range(0, len(chunk), self.step_examples)]
        last = [steps.pop()] if steps and len(steps[-1]) < self.step_examples else []
        steps = [steps[i] for i in rng.permutation(len(steps))] + last
        short = self.total_size - len(order)  # pad, as DistributedSampler does, so every rank has its share
        if short:
            steps[-1] = np.concatenate([steps[-1], order[:short]])
        return steps

    def __iter__(self) -> Iterator[int]:
        world, rank = self.num_replicas, self.rank
        indices = []
        for step in self._steps():
            share = math.ceil(len(step) / world)
            indices += step[rank * share:(rank + 1) * share].tolist()
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


class ResumableDataLoader(DataLoader):
    """A DataLoader with Lightning's `state_dict`/`load_state_dict` protocol: the state is the
    epoch and the number of batches handed out in it (Lightning does not prefetch when the length
    is known, so that is the number trained on when a checkpoint is written)."""

    sampler: ResumableSampler  # or any DistributedSampler with `skip` (multitask.RoundSampler)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served = 0
        self._resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        # Runs at the first batch, after Lightning has set the sampler's epoch.
        self._served = 0
        if self._resume is not None and self._resume["epoch"] == self.sampler.epoch:
            self._served = self._resume["batches"]
            self.sampler.skip = self._served * (self.batch_size or 1)  # None: the dataset's items are batches
        self._resume = None
        if hasattr(self.collate_fn, "epoch"):  # masking depends on the pass over the data
            self.collate_fn.epoch = self.sampler.epoch
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": self._served, "batch_size": int(self.batch_size or 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = dict(state)
