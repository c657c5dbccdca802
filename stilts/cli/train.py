"""`python -m stilts.train`: compose the config, run the pipeline, print the results table.

Usage: python -m stilts.train [+intermediate=NAME|[A,B]] target=NAME [model=..] [trainer=..] [logger=..]

A single run that fails on bad input prints one `error:` line and exits 2. In a multirun (`-m`) a
failing job is recorded (its error in its log, its run folder's failed.json and the sweep's closing
table) and the sweep goes on; the process exits non-zero at the end if any job failed.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

import stilts.cli.resolvers  # noqa: F401  (registers the ${stilts.*:} resolvers the configs use)
from stilts import jobstate
from stilts.errors import StiltsError
from stilts.store.identity import run_key
from stilts.store.results import format_table
from stilts.run.folder import finished_run
from stilts.run.ranks import launch_rank
from stilts.store.locks import job_token
from stilts.sweep import FAILED_FILE, open_job_record, record_failure

# Training, evaluation and the task registry are imported when a job runs, not at import: `--help`
# and `--cfg job` (and Hydra's launcher processes) never pay for torch, Lightning or transformers.

log = logging.getLogger("stilts")


def _message(error: Exception) -> str:
    if isinstance(error, MissingMandatoryValue):
        return f"{error.full_key} must be set, e.g. {error.full_key}=... on the command line"
    return str(error)


def _run(cfg: DictConfig, multirun: bool, run_dir: Path) -> dict:
    """One job: its outcome record."""
    from stilts.checks import check_config
    from stilts.mixtures import expand_intermediate
    from stilts.sweep import run_alone, spawns_rank_processes
    from stilts.tasks import get_task, use_search_path

    use_search_path(HydraConfig.get().searchpath)  # tasks declared in the config folders it adds
    check_config(cfg)
    with open_dict(cfg):
        cfg.intermediate = expand_intermediate(cfg.intermediate)
    if multirun and spawns_rank_processes(cfg):
        return run_alone(run_dir)
    finished = finished_run(Path(cfg.paths.run_dir), run_key(cfg), bool(cfg.overwrite), set_aside=False)
    if finished is None:  # else skipped before torch, Lightning and transformers are even imported
        from stilts.run.pipeline import run_pipeline

        results, skipped = run_pipeline(cfg)
    else:
        results, skipped = finished, True
    if results and launch_rank() == 0:
        print(format_table(results, columns=list(get_task(cfg.target.name).main_metrics)), flush=True)
    return {"state": "skipped" if skipped else "done", "score": results.get("score"),
            "store_bytes": 0 if skipped else results.get("store_bytes_added")}


@hydra.main(version_base="1.3", config_path="pkg://stilts.conf", config_name="config")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    with open_dict(cfg):  # results follow hydra.run.dir / hydra.sweep.dir
        cfg.paths.run_dir = str(run_dir)
    rank_zero = launch_rank() == 0  # files are written by rank 0 alone
    if rank_zero and multirun:
        open_job_record(run_dir, job_token())
    elif rank_zero and os.environ.get(jobstate.RECORD_VARIABLE):  # a multirun's DDP job, run alone
        jobstate.attach_record(Path(os.environ[jobstate.RECORD_VARIABLE]))
    try:
        outcome = _run(cfg, multirun, run_dir)
        if rank_zero and outcome["state"] != "failed":
            (run_dir / FAILED_FILE).unlink(missing_ok=True)
    except (StiltsError, OmegaConfBaseException) as error:
        if rank_zero:
            record_failure(run_dir, _message(error))
        if not multirun:
            print(f"error: {_message(error)}", file=sys.stderr, flush=True)
            sys.exit(2)
        log.error("error: %s", _message(error))
        outcome = {"state": "failed", "error": _message(error)}
    except Exception as error:  # a bug: the traceback goes to the job's log; a multirun goes on
        if rank_zero:
            record_failure(run_dir, f"{type(error).__name__}: {error} (internal error; traceback in the job's log)")
        if not multirun:
            raise
        log.exception("error: job failed")
        outcome = {"state": "failed", "error": f"{type(error).__name__}: {error}"}
    if multirun and rank_zero:
        jobstate.close_record(**outcome)

