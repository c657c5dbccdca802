"""Sweeps that survive a failing job: each job records its outcome, the sweep ends with a table of
every job and exits non-zero when any failed (Hydra's launchers stop at a job's SystemExit and
only report the first exception). Also: checks before Hydra creates any folder, and DDP jobs of a
local multirun re-run alone in a child process, so Lightning's rank processes (which re-execute
the command line) never re-run the whole sweep."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from stilts.errors import StiltsError
from stilts.files import read_json, write_json_atomic

log = logging.getLogger("stilts")
FAILED_FILE = "failed.json"


def _records_dir(sweep_dir: str | Path, sweep_id: str) -> Path:
    return Path(sweep_dir) / ".sweeps" / sweep_id


def sweep_id() -> str:
    """One id per sweep, shared by its jobs and their processes (inherited through the environment)."""
    return os.environ.setdefault("STILTS_SWEEP_ID", f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}")


def record_job(outcome: dict[str, Any]) -> None:
    """The job's outcome, for the sweep's closing table (multirun jobs only)."""
    hydra_cfg = HydraConfig.get()
    folder = _records_dir(hydra_cfg.sweep.dir, sweep_id())
    write_json_atomic(folder / f"job-{int(hydra_cfg.job.num):05d}.json",
                      dict(outcome, job=int(hydra_cfg.job.num), overrides=list(hydra_cfg.overrides.task)))


def record_failure(run_dir: Path, message: str) -> None:
    write_json_atomic(run_dir / FAILED_FILE, {"error": message, "time": time.strftime("%Y-%m-%d %H:%M:%S")})


def _fail(error: StiltsError) -> None:
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(2)


class SweepReport(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks): checks first, a summary table last."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from stilts.checks import check_config, check_writable  # the task registry: only when a job runs

        try:
            check_config(config)
            check_writable(config.paths.output_dir, "paths.output_dir")
            check_writable(config.hydra.run.dir, "hydra.run.dir")
        except StiltsError as error:
            _fail(error)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from stilts.checks import check_writable

        sweep_id()
        try:
            check_writable(config.hydra.sweep.dir, "hydra.sweep.dir")
        except StiltsError as error:
            _fail(error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = _records_dir(config.hydra.sweep.dir, sweep_id())
        records = [read_json(path) or {} for path in sorted(folder.glob("job-*.json"))]
        failed = [r for r in records if r.get("status") == "failed"]
        counts = {status: sum(r.get("status") == status for r in records) for status in ("done", "skipped", "failed")}
        lines = [f"sweep {sweep_id()}: {len(records)} jobs: {counts['done']} done, {counts['skipped']} skipped "
                 f"(already finished), {counts['failed']} failed",
                 f"{'job':>4}  {'status':<8}{'score':>8}  run"]
        for r in records:
            score = r.get("score")
            cell = f"{score:8.2f}" if isinstance(score, (int, float)) else f"{'-':>8}"
            detail = f"  error: {r['error']}" if r.get("error") else ""
            lines.append(f"{r.get('job', '?'):>4}  {r.get('status', '?'):<8}{cell}  {r.get('run_dir', '?')}{detail}")
        print("\n".join(lines), flush=True)
        write_json_atomic(folder / "summary.json", {"jobs": records, "counts": counts})
        if failed:
            print(f"error: {len(failed)} of {len(records)} sweep jobs failed (see the table above and each run's "
                  f"{FAILED_FILE}); rerun the same command to finish the missing ones", file=sys.stderr, flush=True)
            sys.exit(1)


def spawns_rank_processes(cfg: DictConfig) -> bool:
    """Whether Lightning would start this job's other ranks itself by re-executing the command
    line (local DDP); under SLURM/torchrun the launcher starts the ranks."""
    from hydra.utils import instantiate
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    trainer = instantiate(cfg.trainer)(logger=False, enable_checkpointing=False)
    launcher = getattr(trainer.strategy, "launcher", None)
    return (isinstance(launcher, _SubprocessScriptLauncher) and trainer.world_size > 1
            and not trainer.strategy.cluster_environment.creates_processes_externally)


def run_alone(run_dir: Path) -> dict[str, Any]:
    """Run this sweep job as a single run in a child process (its DDP ranks then re-execute that
    child's command line: this job alone) and return its outcome."""
    overrides = list(HydraConfig.get().overrides.task)
    command = [sys.executable, "-m", "stilts.train", *overrides, f"paths.run_dir={run_dir}"]
    log.info("DDP job: running %s", " ".join(command))
    code = subprocess.run(command, check=False).returncode
    results = read_json(run_dir / "results.json")
    if code == 0 and isinstance(results, dict):
        return {"status": "done", "score": results.get("score")}
    failure = read_json(run_dir / FAILED_FILE) or {}
    return {"status": "failed", "error": failure.get("error", f"the job's process exited with code {code}")}
