"""Multi-task sampling: jiant's sampler formulas, draw frequencies, DDP ranks drawing the same task,
per-task streams, and the batch layout of a mixture."""

from __future__ import annotations

import numpy as np
import pytest

from stilts.data.multitask import (Member, MixtureBatches, RoundSampler, Schedule, TaskStream, common_accumulation,
                                   plan_steps, task_probabilities)
from stilts.errors import StiltsError

SIZES = {"squad": 100, "mnli": 400, "qqp": 10_000}


def test_sampler_formulas_on_hand_checked_numbers() -> None:
    assert task_probabilities("uniform", SIZES) == pytest.approx({"squad": 1 / 3, "mnli": 1 / 3, "qqp": 1 / 3})
    assert task_probabilities("proportional", SIZES) == pytest.approx(
        {"squad": 100 / 10_500, "mnli": 400 / 10_500, "qqp": 10_000 / 10_500})
    # min(N, 1600) ** (1/2) = 10, 20, 40  ->  1/7, 2/7, 4/7
    assert task_probabilities("temperature", SIZES, temperature=2.0, examples_cap=1600) == pytest.approx(
        {"squad": 1 / 7, "mnli": 2 / 7, "qqp": 4 / 7})
    # Without a cap: 10, 20, 100 -> /130
    assert task_probabilities("temperature", SIZES, temperature=2.0) == pytest.approx(
        {"squad": 10 / 130, "mnli": 20 / 130, "qqp": 100 / 130})
    # Temperature 1 is proportional; a huge temperature tends to uniform.
    assert task_probabilities("temperature", SIZES) == pytest.approx(task_probabilities("proportional", SIZES))
    assert task_probabilities("temperature", SIZES, temperature=1e6) == pytest.approx(
        task_probabilities("uniform", SIZES), abs=1e-4)
    assert task_probabilities("specified", SIZES, weights={"squad": 1, "mnli": 3, "qqp": 0}) == pytest.approx(
        {"squad": 0.25, "mnli": 0.75, "qqp": 0.0})


@pytest.mark.parametrize("sampler, kwargs, message", [
    ("roundrobin", {}, "unknown sampler 'roundrobin'"),
    ("specified", {"weights": {"squad": 1}}, "missing ['mnli', 'qqp']"),
    ("specified", {"weights": {"squad": 0, "mnli": 0, "qqp": 0}}, "sum to 0"),
])
def test_sampler_errors_name_the_problem(sampler, kwargs, message) -> None:
    with pytest.raises(StiltsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        task_probabilities(sampler, SIZES, **kwargs)


@pytest.mark.parametrize("sampler, kwargs", [("uniform", {}), ("proportional", {}),
                                             ("temperature", {"temperature": 2.0, "examples_cap": 1600})])
def test_draw_frequencies_match_the_formula(sampler, kwargs) -> None:
    probabilities = task_probabilities(sampler, SIZES, **kwargs)
    schedule = Schedule(tuple(probabilities.values()), steps_per_round=20_000, rounds=2, seed=3)
    drawn = np.concatenate([schedule.tasks(0), schedule.tasks(1)])
    frequencies = np.bincount(drawn, minlength=3) / len(drawn)
    assert frequencies == pytest.approx(list(probabilities.values()), abs=0.01)


def test_schedule_depends_on_seed_and_round_only() -> None:
    schedule = Schedule((0.2, 0.3, 0.5), steps_per_round=50, rounds=3, seed=7)
    again = Schedule((0.2, 0.3, 0.5), steps_per_round=50, rounds=3, seed=7)
    assert all((schedule.tasks(r) == again.tasks(r)).all() for r in range(3))
    assert not (schedule.tasks(0) == schedule.tasks(1)).all()
    assert not (schedule.tasks(0) == Schedule((0.2, 0.3, 0.5), 50, 3, seed=8).tasks(0)).all()
    counts = sum(np.bincount(schedule.tasks(r), minlength=3) for r in range(2))
    assert schedule.steps_before(2).tolist() == counts.tolist()


def test_a_task_stream_covers_every_example_once_per_pass_and_splits_ranks() -> None:
    streams = [TaskStream(size=10, micro=5, seed=1, rank=rank, world_size=2) for rank in (0, 1)]
    first_pass = [example for stream in streams for example, pass_ in stream.batch(0)]
    assert sorted(first_pass) == list(range(10)) and all(p == 0 for s in streams for _, p in s.batch(0))
    # The next micro-batch is the next pass, in another order.
    second = streams[0].batch(1)
    assert {pass_ for _, pass_ in second} == {1}
    # A micro-batch longer than what is left runs on into the next pass (every step has its full batch).
    odd = TaskStream(size=7, micro=3, seed=1)
    items = [item for j in range(3) for item in odd.batch(j)]
    assert len(items) == 9 and [p for _, p in items] == [0] * 7 + [1] * 2
    assert sorted(e for e, p in items if p == 0) == list(range(7))


class _Features:
    def __init__(self, name: str, size: int) -> None:
        self.rows = [{"input_ids": [0, i, 2], "attention_mask": [1, 1, 1], "feature_index": i} for i in range(size)]

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]


def _collate(rows, passes):
    return {"examples": [row["feature_index"] for row in rows], "passes": list(passes)}


def _batches(rank: int, world_size: int, accumulation: int = 2) -> MixtureBatches:
    members = [Member(name, _Features(name, size), _collate, TaskStream(size, 2, seed, rank, world_size))
               for name, size, seed in (("squad", 12, 1), ("mnli", 30, 2), ("hellaswag", 8, 3))]
    return MixtureBatches(members, Schedule((0.3, 0.5, 0.2), steps_per_round=10, rounds=2, seed=5), accumulation)


def test_ddp_ranks_draw_the_same_task_at_every_step_and_different_examples() -> None:
    ranks = [_batches(rank, world_size=2) for rank in (0, 1)]
    for round_ in (0, 1):
        for i in range(len(ranks[0])):
            first, second = (batches[(round_, i)] for batches in ranks)
            assert first["task"] == second["task"]
            assert not set(first["examples"]) & set(second["examples"])


def test_a_step_s_micro_batches_share_its_task_and_items_replay_in_any_order() -> None:
    batches = _batches(rank=0, world_size=1, accumulation=3)
    items = [(round_, i) for round_ in (0, 1) for i in range(len(batches))]
    seen = [batches[item] for item in items]
    for step in range(len(seen) // 3):
        assert len({batch["task"] for batch in seen[3 * step: 3 * step + 3]}) == 1
    replayed = _batches(rank=0, world_size=1, accumulation=3)
    for item in reversed(items):  # a resumed loader starts mid-round, on a fresh instance
        assert replayed[item] == seen[items.index(item)]


def test_the_round_sampler_hands_out_its_round_and_skips_on_resume() -> None:
    batches = _batches(rank=0, world_size=1)
    sampler = RoundSampler(batches)
    sampler.set_epoch(1)
    sampler.skip = 17
    assert list(sampler) == [(1, i) for i in range(17, 20)]
    assert list(sampler)[:1] == [(1, 0)] and len(sampler) == 20


def test_a_mixture_keeps_every_task_s_effective_batch() -> None:
    assert common_accumulation({"squad": 16, "mnli": 32}, micro_batch_size=8) == 4  # 4 x 4 and 8 x 4
    assert common_accumulation({"squad": 8, "mnli": 8}, micro_batch_size=8) == 1
    with pytest.raises(StiltsError, match="no common accumulation"):
        common_accumulation({"squad": 9, "mnli": 32}, micro_batch_size=8)


def test_the_step_budget_is_jiant_s_sum_of_epochs_rounded_to_whole_rounds() -> None:
    assert plan_steps({"squad": 4, "mnli": 6}, {"squad": 2, "mnli": 3}, None, rounds=3) == (27, 9)  # 8 + 18 = 26
    assert plan_steps({"squad": 4, "mnli": 6}, {"squad": 2, "mnli": 3}, 100, rounds=4) == (100, 25)
