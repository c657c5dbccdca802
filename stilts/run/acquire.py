"""The stage store's protocol as a run sees it: a finished, intact stage is reused; otherwise it is
trained here under the stage's lock (a job that needs a stage another job is training waits, then
reuses it); a target stage whose encoder was dropped is trained again, same key, same weights. A
run holds every stage it reads as in use. Under DDP, rank 0 decides and the other ranks follow."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from stilts import jobstate
from stilts.store.files import read_json
from stilts.run.fit import fit_stage
from stilts.store import encoders, locks, stages
from stilts.store.stages import EncoderSource, Stage

log = logging.getLogger(__name__)
NEEDED_VARIABLE = "STILTS_ENCODERS_NEEDED"


def barrier() -> None:
    """Wait for every DDP rank (a no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _trained_again(stage: Stage, summary: Mapping[str, Any]) -> None:
    """Says whether a stage trained again after its encoder was dropped has the first training's
    weights (its checksums were kept in stage.json)."""
    differ = stages.check_retrained(stage.directory, summary)
    if differ == []:
        log.info("Stage %s: trained again exactly: its encoder and heads match the checksums recorded at its "
                 "first training", stage.name)
    elif differ:
        log.warning("Stage %s: trained again, but %s differ from its first training (nondeterministic kernels): "
                    "runs evaluated before used the first weights", stage.name, ", ".join(differ[:3]))


def acquire_stage(cfg: DictConfig, stage: Stage, pretrained: str, run_name: str,
                  need_encoder: bool = True) -> tuple[dict[str, Any], str]:
    """The stage's summary and how it was acquired: "reused" (finished, intact, and still holding
    its encoder when this run needs it), "trained" or "retrained" (its encoder had been dropped)."""
    if rank_zero_only.rank != 0:
        summary = locks.await_rank_zero(stage.directory, stage.name, need_encoder)
        if summary is None:
            fit_stage(cfg, stage, pretrained, run_name)
            barrier()
            return read_json(stage.directory / stages.STAGE_FILE), "trained"
        return summary, "reused"
    summary = stages.finished(stage.directory)
    if summary is None or (need_encoder and not stages.has_encoder(summary)):
        with locks.training_lock(stage.directory, f"stage {stage.name}", on_wait=jobstate.waiting(stage.name)):
            jobstate.update(state="running", stage=stage.name, waiting_for=None)
            summary = stages.finished(stage.directory)  # another job may have finished it meanwhile
            if summary is not None and need_encoder and not stages.has_encoder(summary):
                log.info("Stage %s: its encoder was dropped once its run was evaluated (keep_target_encoders=false) "
                         "and this run needs it: training the stage again (same key, same weights)", stage.name)
                stages.begin_retraining(stage.directory)
                summary = None
            if summary is None:
                locks.claim(stage.directory)
                try:
                    fit_stage(cfg, stage, pretrained, run_name)
                finally:
                    locks.unclaim(stage.directory)
                barrier()
                summary = read_json(stage.directory / stages.STAGE_FILE)
                retrained = (stage.directory / stages.RETRAINING_FILE).exists()
                _trained_again(stage, summary)
                return summary, "retrained" if retrained else "trained"
    log.info("Stage %s: reusing %s (already trained with the same settings)", stage.name, stage.directory)
    return summary, "reused"


def encoders_needed_by_job(planned: Sequence[Stage], key: str) -> list[bool]:
    """Which stages' encoders the run reads. Rank 0 works it out; the ranks Lightning's launcher
    starts inherit its answer (so every rank takes the same decisions), ranks SLURM starts with it
    work it out alike."""
    inherited = json.loads(os.environ.get(NEEDED_VARIABLE) or "{}")
    if rank_zero_only.rank != 0 and inherited.get("run") == key:
        return inherited["needed"]
    needed = encoders.needed(planned)
    if rank_zero_only.rank == 0:
        os.environ[NEEDED_VARIABLE] = json.dumps({"run": key, "needed": needed})
    return needed


def reading(planned: Sequence[Stage]) -> contextlib.ExitStack:
    """Rank 0 holds every stage of its run as in use (shared locks) while the run reads them."""
    stack = contextlib.ExitStack()
    if rank_zero_only.rank == 0:
        for stage in planned:
            stack.enter_context(locks.in_use(stage.directory))
    return stack


def acquire_stages(cfg: DictConfig, planned: Sequence[Stage], pretrained: str, key: str, run_name: str
                   ) -> tuple[dict[str, Any], dict[str, str], EncoderSource]:
    """Every stage of the plan in order, each starting from the last one's encoder: (summaries and
    how each was acquired, by stage name; the encoder the target is evaluated or embedded with).
    The caller holds them `reading`."""
    summaries, how = {}, {}
    for stage, need_encoder in zip(planned, encoders_needed_by_job(planned, key)):
        summaries[stage.name], how[stage.name] = acquire_stage(cfg, stage, pretrained, run_name, need_encoder)
    return summaries, how, planned[-1].trained_encoder if planned else EncoderSource(pretrained)
