"""Which encoders a run reads, and dropping the encoders of its target stages once it is evaluated:
only intermediate stages are reused by other runs, so a target stage keeps its head, predictions and
stage.json, and a run that needs a dropped encoder trains that stage again (stilts.run.acquire)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from stilts.store.files import human_bytes, read_json
from stilts.store import locks, stages
from stilts.store.stages import Stage

log = logging.getLogger(__name__)


def needed(planned: Sequence[Stage]) -> list[bool]:
    """Which stages' encoders this run reads: the last stage's (evaluated or embedding), the parent
    of every stage it will train, and the parent of every adapter stage whose encoder it reads (an
    adapter loads on the encoder it was trained on). Only target stages (and their recipes) drop
    encoders, so the walk back ends at the first intermediate stage, which keeps its encoder."""
    reads = [stage.role == "intermediate" for stage in planned]
    if planned:
        reads[-1] = True
    for index in range(len(planned) - 1, 0, -1):
        if planned[index - 1].role == "intermediate":
            break
        summary = stages.finished(planned[index].directory, set_aside_damaged=False)
        reads[index - 1] = summary is None or (reads[index] and (planned[index].peft is not None
                                                                 or not stages.has_encoder(summary)))
    return reads


def drop_target_encoders(planned: Sequence[Stage]) -> dict[str, int]:
    """Once the run is evaluated, its target stages (and their recipes) keep head, predictions and
    stage.json but not their encoder: only intermediate stages are reused. A stage another run is
    reading keeps it until that run ends (it drops it then). Bytes freed per stage."""
    freed = {}
    for stage in planned:
        if stage.role == "intermediate":
            continue
        with locks.alone(stage.directory) as alone:
            summary = read_json(stage.directory / stages.STAGE_FILE)
            if not alone or not isinstance(summary, dict) or not stages.has_encoder(summary):
                continue
            freed[stage.name] = stages.drop_encoder(stage.directory, summary)
            log.info("Stage %s: dropped its encoder (%s; keep_target_encoders=true keeps it)", stage.name,
                     human_bytes(freed[stage.name]))
    return freed
