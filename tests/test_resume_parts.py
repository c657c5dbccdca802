"""The pieces exact resume rests on: the sampler's order, the loader's position, the checkpoint
file (atomic, checksummed, weights only) and the RNG state it carries."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from stilts.data.sampling import ResumableDataLoader, ResumableSampler
from stilts.model.resume import AtomicCheckpointIO, _rng_state, _set_rng_state, checkpoint_intact, checkpoint_step


def _loader(epoch: int) -> ResumableDataLoader:
    data = list(range(23))
    loader = ResumableDataLoader(data, batch_size=4, sampler=ResumableSampler(data, seed=7),
                                 generator=torch.Generator().manual_seed(0))
    loader.sampler.set_epoch(epoch)
    return loader


def test_the_order_depends_on_seed_and_epoch_only_and_never_on_the_global_rng() -> None:
    state = torch.get_rng_state()
    first = [batch.tolist() for batch in _loader(1)]
    torch.manual_seed(123)
    assert [batch.tolist() for batch in _loader(1)] == first
    assert [batch.tolist() for batch in _loader(2)] != first
    torch.set_rng_state(state)
    _ = [batch for batch in _loader(0)]
    assert torch.equal(torch.get_rng_state(), state)


def test_a_loader_resumes_at_the_batch_it_had_handed_out() -> None:
    full = [batch.tolist() for batch in _loader(3)]
    interrupted = _loader(3)
    iterator = iter(interrupted)
    seen = [next(iterator).tolist() for _ in range(2)]
    state = interrupted.state_dict()
    assert state["epoch"] == 3 and state["batches"] == 2
    resumed = _loader(3)
    resumed.load_state_dict(state)
    assert seen + [batch.tolist() for batch in resumed] == full
    # The position belongs to its epoch: the next epoch starts from its beginning.
    other_epoch = _loader(4)
    other_epoch.load_state_dict(state)
    assert len(list(other_epoch)) == len(full)


def test_ranks_see_disjoint_shares() -> None:
    data = list(range(20))
    shares = [set(ResumableSampler(data, seed=1, num_replicas=2, rank=rank)) for rank in (0, 1)]
    assert not shares[0] & shares[1] and shares[0] | shares[1] == set(data)


def test_checkpoints_are_checksummed_and_a_truncated_one_is_detected(tmp_path) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.arange(1000.0)}, "global_step": 3}, path)
    assert checkpoint_intact(path) and checkpoint_step(path) == 3 and not list(tmp_path.glob(".last.ckpt.*"))
    assert io.load_checkpoint(path)["global_step"] == 3
    path.write_bytes(path.read_bytes()[:100])
    assert not checkpoint_intact(path)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoints_load_as_weights_only(tmp_path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Payload()}, path)
    with pytest.raises(Exception, match="[Ww]eights"):
        AtomicCheckpointIO().load_checkpoint(path)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path) -> None:
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    io, path = AtomicCheckpointIO(), tmp_path / "rng.ckpt"
    io.save_checkpoint({"rng": _rng_state()}, path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    _set_rng_state(io.load_checkpoint(path)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_resumed_loggers_keep_or_purge_the_replayed_steps(tmp_path) -> None:
    from tests.test_configs import compose_config
    from stilts.run.loggers import make_loggers

    [tensorboard] = make_loggers(compose_config("logger=tensorboard", f"paths.output_dir={tmp_path}"), "1-xnli",
                                 "target", "run", resume_step=5)
    assert tensorboard._kwargs["purge_step"] == 5
    cfg = compose_config(f"paths.output_dir={tmp_path}")
    [csv] = make_loggers(cfg, "1-xnli", "target", "run")
    csv.log_metrics({"loss": 1.0}, step=3)
    csv.log_metrics({"loss": 2.0}, step=5)
    csv.save()
    [resumed] = make_loggers(cfg, "1-xnli", "target", "run", resume_step=5)
    resumed.log_metrics({"loss": 2.5}, step=5)
    resumed.save()
    rows = (Path(csv.log_dir) / "metrics.csv").read_text().splitlines()
    assert rows == ["loss,step", "1.0,3", "2.5,5"]
