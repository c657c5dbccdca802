"""The X-STILTs pipeline of one config: plan -> acquire or train each stage -> evaluate the target
zero-shot -> results.json. One intermediate model serves every target of a sweep (stages are
reused, never retrained), the next stage loads only the encoder, and a finished run is skipped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from stilts.checks import check_no_evaluation_data
from stilts.store.files import replace_folder
from stilts.store.identity import run_key
from stilts.model.encoder import resolve_pretrained
from stilts.run import acquire, evaluate, folder
from stilts.run.loggers import log_run
from stilts.run.plan import plan_stages
from stilts.store import encoders
from stilts.tasks import get_task
from stilts.tasks.common.languages import target_languages


def run_pipeline(cfg: DictConfig) -> tuple[dict[str, Any], bool]:
    """Run (or resume) the whole pipeline of one config: (its results document, whether the run
    had finished before and was skipped). DDP ranks other than 0 get an empty document."""
    run_dir, key, target = Path(cfg.paths.run_dir), run_key(cfg), get_task(cfg.target.name)
    languages = target_languages(cfg.target, target)
    with folder.run_lock(run_dir):
        finished = folder.finished_run(run_dir, key, bool(cfg.overwrite))
        if finished is not None:
            return finished, True
        pretrained = resolve_pretrained(cfg.model.name_or_path, cfg.paths.cache_dir, cfg.model.get("tiny"))
        planned = plan_stages(cfg, pretrained)
        check_no_evaluation_data(cfg, planned, target, languages)
        evaluate.check_retrieval_recipe(cfg, planned, target)
        staging = run_dir / f".predictions-{os.getpid()}"
        with acquire.reading(planned):
            summaries, how, last_encoder = acquire.acquire_stages(cfg, planned, pretrained, key, cfg.paths.run_name)
            evaluation = evaluate.evaluate(cfg, target, planned, summaries, last_encoder, languages,
                                           cfg.paths.run_name, staging)
        if evaluation is None:  # a DDP rank other than 0: it only helped
            return {}, False
        if staging.exists():
            replace_folder(staging, run_dir / "predictions")
        if not cfg.keep_target_encoders:
            encoders.drop_target_encoders(planned)
        results = folder.results_document(cfg, key, target, planned, summaries, how, languages, evaluation)
        folder.write_results(run_dir, planned, results)
        log_run(cfg, results, cfg.paths.run_name)
    return results, False
