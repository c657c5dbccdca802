"""The length-grouped training order: a function of (seed, epoch), each feature once per epoch, the
same examples in every optimizer step whatever the micro-batch and device count, resumable, and
with far less padding than plain shuffling."""

from __future__ import annotations

import numpy as np
import pytest

from stilts.data.sampling import LengthGroupedSampler, ResumableSampler


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(5, 200, size=n).tolist()


def _sampler(lengths, *, step=32, world=1, rank=0, seed=1, epoch=0) -> LengthGroupedSampler:
    sampler = LengthGroupedSampler(range(len(lengths)), lengths=lengths, step_examples=step, seed=seed,
                                   num_replicas=world, rank=rank)
    sampler.set_epoch(epoch)
    return sampler


def _real_fraction(order: list[int], lengths: list[int], micro: int) -> float:
    batches = [order[i:i + micro] for i in range(0, len(order), micro)]
    real = sum(lengths[i] for batch in batches for i in batch)
    return real / sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)


def test_an_epoch_is_every_feature_once_in_a_seeded_order() -> None:
    lengths = _lengths(1001)
    order = list(_sampler(lengths))
    assert sorted(order) == list(range(1001)) and len(_sampler(lengths)) == 1001
    assert order == list(_sampler(lengths))  # (seed, epoch) alone decide
    assert order != list(_sampler(lengths, epoch=1)) and order != list(_sampler(lengths, seed=2))


def test_steps_hold_the_same_examples_whatever_the_layout() -> None:
    """Step k's features are the same set on 1 device or split over 2 (micro-batches of 8 or 16)."""
    lengths = _lengths(1000)
    one = list(_sampler(lengths, step=32))
    ranks = [list(_sampler(lengths, step=32, world=2, rank=rank)) for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 500
    for k in range(len(one) // 32):
        assert set(one[32 * k:32 * (k + 1)]) == set(ranks[0][16 * k:16 * (k + 1)]) | set(ranks[1][16 * k:16 * (k + 1)])


def test_ranks_get_equal_shares_padded_like_distributed_sampler() -> None:
    lengths = _lengths(1003)
    ranks = [list(_sampler(lengths, step=32, world=2, rank=rank)) for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 502  # ceil(1003 / 2), one feature repeated
    assert set(ranks[0]) | set(ranks[1]) == set(range(1003))


def test_a_resumed_epoch_continues_exactly() -> None:
    lengths = _lengths(500)
    full = list(_sampler(lengths, step=16, epoch=3))
    resumed = _sampler(lengths, step=16, epoch=3)
    resumed.skip = 5 * 8  # five micro-batches of 8 were trained before the crash
    assert list(resumed) == full[40:]


@pytest.mark.parametrize("micro", [8, 32])
def test_grouping_removes_most_padding(micro: int) -> None:
    lengths = _lengths(4000)
    grouped = _real_fraction(list(_sampler(lengths, step=32)), lengths, micro)
    shuffled = ResumableSampler(range(len(lengths)), seed=1)
    plain = _real_fraction(list(shuffled), lengths, micro)
    assert grouped >= 0.95 > 0.7 > plain
