"""Training batches in an order that depends only on (seed, epoch), and a loader that can resume
mid-epoch: after a crash, the rerun sees exactly the batches the uninterrupted run would have."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, DistributedSampler


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
