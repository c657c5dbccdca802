"""A run's folder: one writer at a time, the finished-run check (the only one: the CLI asks it
before importing torch, the pipeline again under the run's lock), links to its stages, and the
results.json document."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from stilts import jobstate
from stilts.store.files import write_json_atomic
from stilts.store.identity import comparison_keys, model_tag
from stilts.store.results import RESULTS_FILE, build_results, describe_stage, intermediate_metrics, read_results
from stilts.run.ranks import launch_rank
from stilts.store import locks, stages
from stilts.store.stages import Stage
from stilts.tasks.spec import TaskSpec

log = logging.getLogger(__name__)
PREVIOUS_RESULTS_FILE = "results.previous.json"


def link_stages(run_dir: Path, planned: Sequence[Stage]) -> None:
    """The run folder points at its stage folders (shared across runs of a sweep)."""
    links = run_dir / "stages"
    links.mkdir(parents=True, exist_ok=True)
    for stage in planned:
        link = links / stage.name
        target = os.path.relpath(stage.directory, links)
        if link.is_symlink() and os.readlink(link) != target:
            link.unlink()
        if not link.is_symlink():
            link.symlink_to(target)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One writer per run folder (rank 0 only: the other DDP ranks work inside its run)."""
    if launch_rank() != 0:
        yield
        return
    with locks.training_lock(run_dir, f"run {run_dir}", on_wait=jobstate.waiting(f"run {run_dir.name}")):
        yield


def finished_run(run_dir: Path, key: str, overwrite: bool, set_aside: bool = True) -> dict[str, Any] | None:
    """The results of this very run when they exist and are intact (and overwrite is off), else
    None. With `set_aside` (the pipeline, holding the run's lock), a damaged results.json, or one
    made with another config, is kept aside as results.previous.json; without it (the CLI's check
    before torch is imported) nothing is touched."""
    path = run_dir / RESULTS_FILE
    if not path.exists():
        return None
    previous = read_results(path)
    if previous is not None and previous["run_key"] == key and not overwrite:
        log.info("%s exists: skipping this run (overwrite=true to redo it)", path)
        return previous
    if set_aside:
        reason = ("is damaged" if previous is None else "is redone (overwrite=true)" if previous["run_key"] == key
                  else "was made with another config")
        log.info("%s %s: running again (finished stages are reused)", path, reason)
        if launch_rank() == 0:
            os.replace(path, path.with_name(PREVIOUS_RESULTS_FILE))
    return None


def write_results(run_dir: Path, planned: Sequence[Stage], results: Mapping[str, Any]) -> None:
    """The run folder's links to its stages, then results.json (atomically: a reader never sees half
    of it); the earlier results it replaces go."""
    link_stages(run_dir, planned)
    write_json_atomic(run_dir / RESULTS_FILE, results)
    (run_dir / PREVIOUS_RESULTS_FILE).unlink(missing_ok=True)
    log.info("Wrote %s", run_dir / RESULTS_FILE)


def results_document(cfg: DictConfig, key: str, target: TaskSpec, planned: Sequence[Stage],
                     summaries: Mapping[str, Any], how: Mapping[str, str], languages: Sequence[str],
                     evaluation: tuple) -> dict[str, Any]:
    """The run's results.json document, with what each stage holds in the store and the bytes this
    run added to it (the stages it trained; a stage trained again adds nothing new)."""
    metrics, scores, no_gold, retrieval = evaluation
    intermediate = [stage for stage in planned if stage.role == "intermediate"]
    stage_facts = {stage.name: {k: summaries[stage.name].get(k) for k in (
        "key", "dev_score", "train_real_token_fraction", "global_steps", "world_size", "resumed_from_steps")}
        | {"reused": how[stage.name] == "reused", "retrained": how[stage.name] == "retrained",
           "bytes": stages.stored_bytes(stage.directory)} for stage in planned}
    added = sum(facts["bytes"] for name, facts in stage_facts.items() if how[name] == "trained")
    return build_results(
        target=target.name,
        intermediate=[stage.label for stage in intermediate],
        model=cfg.model.name_or_path,
        model_label=cfg.model.get("label") or model_tag(cfg.model.name_or_path),
        seed=cfg.seed,
        metrics={language: metrics[language] for language in languages},
        scores=scores,
        intermediate_metrics=intermediate_metrics(intermediate, summaries),
        config=OmegaConf.to_container(cfg, resolve=True),
        no_gold=no_gold,
        extra={"run_key": key, **comparison_keys(cfg), "stages": stage_facts, "store_bytes_added": added,
               **({"retrieval": retrieval} if retrieval is not None else {}),
               "resumed": any(facts["resumed_from_steps"] for facts in stage_facts.values()),
               "intermediate_stages": [describe_stage(stage) for stage in intermediate]},
    )
