"""A stop signal during training (SLURM's time-limit warning, preemption, scancel) is acted on at
the next optimizer step: the resume checkpoint is written there, then the warning's own handler
(submitit's requeue) runs or the process ends; the rerun from that checkpoint ends with exactly the
weights of an uninterrupted fit. In process, on a small Lightning model (no cluster needed)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from stilts.data.sampling import ResumableDataLoader, ResumableSampler
from stilts.errors import StiltsError
from stilts.model.resume import AtomicCheckpointIO, ExactResume, ResumeCheckpoint, checkpoint_step

ACCUMULATE = 2  # micro-batches per optimizer step; 10 micro-batches an epoch


class _Model(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(4, 1)
        self.dropout = torch.nn.Dropout(0.5)  # draws from the RNG: exact resume must restore it

    def training_step(self, batch, batch_idx):
        return self.dropout(self.layer(batch)).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        data = [row for row in torch.randn(20, 4, generator=torch.Generator().manual_seed(1))]
        return ResumableDataLoader(data, batch_size=2, sampler=ResumableSampler(data, seed=3),
                                   generator=torch.Generator().manual_seed(0))


class _SendAt(pl.Callback):
    """Sends `signum` to this process when micro-batch `batch` of epoch 0 starts."""

    def __init__(self, signum: int, batch: int) -> None:
        self.signum, self.batch = signum, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0 and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)


def _fit(folder: Path, *callbacks: pl.Callback, resume: Path | None = None) -> _Model:
    pl.seed_everything(5, workers=True, verbose=False)
    model = _Model()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, accumulate_grad_batches=ACCUMULATE, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         plugins=[AtomicCheckpointIO()],
                         callbacks=[ExactResume(), ResumeCheckpoint(folder, every_n_steps=1000), *callbacks])
    trainer.fit(model, ckpt_path=str(resume) if resume else None)
    return model


@pytest.fixture()
def warning_handler():
    """Stands in for submitit's SIGUSR2 handler (requeue, then exit), and puts the old one back."""
    calls: list[int] = []

    def requeue_and_exit(signum, frame) -> None:
        calls.append(signum)
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR2, requeue_and_exit)
    yield requeue_and_exit, calls
    signal.signal(signal.SIGUSR2, previous)


def test_the_warning_signal_saves_after_the_current_step_then_requeues_and_the_rerun_is_exact(
        tmp_path, warning_handler) -> None:
    handler, calls = warning_handler
    sigterm_before = signal.getsignal(signal.SIGTERM)
    folder = tmp_path / "stopped"
    # Micro-batch 5 is the second half of optimizer step 3 (steps 1-2 done when it starts).
    with pytest.raises(SystemExit) as stopped:
        _fit(folder, _SendAt(signal.SIGUSR2, 5))
    assert stopped.value.code == -1 and calls == [signal.SIGUSR2]  # submitit's handler ran, once
    assert checkpoint_step(folder / "last.ckpt") == 3  # saved when step 3 completed: nothing lost
    assert signal.getsignal(signal.SIGUSR2) is handler and signal.getsignal(signal.SIGTERM) is sigterm_before
    resumed = _fit(folder, resume=folder / "last.ckpt")
    uninterrupted = _fit(tmp_path / "whole")
    for got, expected in zip(resumed.parameters(), uninterrupted.parameters()):
        assert torch.equal(got, expected)


def test_sigterm_saves_at_the_next_resume_point_and_ends_the_process(tmp_path) -> None:
    folder = tmp_path / "stopped"
    # Micro-batch 8 starts step 5, the epoch's last (step 4 is done): a resume point there would skip
    # the epoch's validation, so the checkpoint waits for step 6, the next epoch's first.
    with pytest.raises(SystemExit) as stopped:
        _fit(folder, _SendAt(signal.SIGTERM, 8))
    assert stopped.value.code == 128 + signal.SIGTERM
    assert checkpoint_step(folder / "last.ckpt") == 6


def test_a_warning_with_no_requeue_left_is_one_error_and_the_checkpoint_stays(tmp_path) -> None:
    def out_of_requeues(signum, frame) -> None:  # submitit past max_num_timeout
        raise RuntimeError("Job not requeued because: timed-out too many times.")

    previous = signal.signal(signal.SIGUSR2, out_of_requeues)
    try:
        with pytest.raises(StiltsError, match="not requeued.*timed-out too many times.*submit the same command"):
            _fit(tmp_path, _SendAt(signal.SIGUSR2, 2))
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert checkpoint_step(tmp_path / "last.ckpt") == 2
