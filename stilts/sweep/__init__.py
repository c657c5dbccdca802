"""Sweeps that survive a failing job: each job keeps a record of its state in the sweep's folder
(`<sweep dir>/.sweeps/<sweep id>/`, beside the plan of every job), the sweep ends with a table of
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from stilts import jobstate
from stilts.errors import StiltsError
from stilts.store.files import read_json, write_json_atomic

log = logging.getLogger("stilts")
FAILED_FILE = "failed.json"
SWEEPS_DIR = ".sweeps"
PLAN_FILE = "plan.json"
SUMMARY_FILE = "summary.json"
GPU_ACCELERATORS = ("gpu", "cuda", "auto")  # `auto` runs on the node's GPUs, so a SLURM job asks for them


def records_dir(sweep_dir: str | Path, sweep: str) -> Path:
    return Path(sweep_dir) / SWEEPS_DIR / sweep


def record_path(folder: Path, job: int) -> Path:
    return folder / f"job-{int(job):05d}.json"


def sweep_id() -> str:
    """One id per sweep, shared by its jobs and their processes (inherited through the environment)."""
    return os.environ.setdefault("STILTS_SWEEP_ID", f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}")


def sweep_jobs(overrides: Sequence[str], sweeper_params: Mapping[str, Any] | None) -> list[list[str]]:
    """The overrides of every job of `-m OVERRIDES`, numbered as Hydra's basic sweeper numbers them
    (a preset's hydra.sweeper.params first, then the command line)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{key}={value}" for key, value in (sweeper_params or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + list(overrides))
    return [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]


def open_job_record(run_dir: Path, token: str) -> None:
    """This multirun job's record in its sweep's folder (rank 0 only)."""
    hydra_cfg = HydraConfig.get()
    job = int(hydra_cfg.job.num)
    jobstate.open_record(record_path(records_dir(hydra_cfg.sweep.dir, sweep_id()), job), job=job,
                         overrides=list(hydra_cfg.overrides.task), run_dir=str(run_dir), token=token)


def record_failure(run_dir: Path, message: str) -> None:
    write_json_atomic(run_dir / FAILED_FILE, {"error": message, "time": time.strftime("%Y-%m-%d %H:%M:%S")})


def fail(error: StiltsError | str) -> None:
    """One `error:` line and exit 2: for problems found before any job starts."""
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(2)


def _write_plan(config: DictConfig) -> None:
    """The sweep's jobs, so `stilts.sweep status` can name the ones that have not started yet."""
    try:
        jobs = sweep_jobs(list(config.hydra.overrides.task), config.hydra.sweeper.get("params"))
    except Exception as error:  # an unusual sweeper: the plan is informative only
        log.warning("Could not list the sweep's jobs for stilts.sweep status (%s)", error)
        jobs = []
    write_json_atomic(records_dir(config.hydra.sweep.dir, sweep_id()) / PLAN_FILE, {
        "sweep": sweep_id(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "sweep_dir": str(Path(config.hydra.sweep.dir).absolute()),
        "launcher": str(config.hydra.launcher.get("_target_", "")),
        "jobs": [{"job": number, "overrides": overrides} for number, overrides in enumerate(jobs)],
    })


class SweepReport(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks): checks first, a summary table last."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from stilts.checks import check_config, check_writable  # the task registry: only when a job runs
        from stilts.tasks import use_search_path

        use_search_path(config.hydra.searchpath)
        try:
            check_config(config)
            check_writable(config.paths.output_dir, "paths.output_dir")
            check_writable(config.hydra.run.dir, "hydra.run.dir")
        except StiltsError as error:
            fail(error)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from stilts.checks import check_writable
        from stilts.tasks import use_search_path

        use_search_path(config.hydra.searchpath)
        sweep_id()
        try:
            check_writable(config.hydra.sweep.dir, "hydra.sweep.dir")
            if str(config.hydra.launcher.get("_target_", "")).startswith("hydra_plugins.stilts_launcher"):
                check_slurm_resources(config.trainer)
                _register_launcher().check_accounting()
        except StiltsError as error:
            fail(error)
        _write_plan(config)
        log.info("Sweep %s: follow it with  python -m stilts.sweep status %s", sweep_id(), config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from stilts.sweep.status import format_final_table, read_sweep

        sweep = read_sweep(records_dir(config.hydra.sweep.dir, sweep_id()))
        print(format_final_table(sweep), flush=True)
        write_json_atomic(sweep.folder / SUMMARY_FILE, {"jobs": sweep.records, "counts": sweep.counts})
        failed = sweep.counts.get("failed", 0)
        if failed:
            print(f"error: {failed} of {len(sweep.jobs)} sweep jobs failed (see the table above and each run's "
                  f"{FAILED_FILE}); rerun the same command to finish the missing ones", file=sys.stderr, flush=True)
            sys.exit(1)


def slurm_gpus(accelerator: str, devices: Any) -> int | None:
    """`${stilts.slurm_gpus:...}`: GPUs are requested only when the trainer runs on GPUs."""
    return devices if str(accelerator) in GPU_ACCELERATORS and isinstance(devices, int) else None


def slurm_tasks(strategy: Any, devices: Any) -> int:
    """`${stilts.slurm_tasks:...}`: one SLURM task per device under DDP (Lightning's SLURM
    environment then maps tasks to ranks), else one task that uses its devices itself."""
    return devices if str(strategy).startswith("ddp") and isinstance(devices, int) else 1


def _register_launcher() -> Any:
    """Hydra finds plugins by walking the `hydra_plugins` namespace, which misses an editable
    install (`pip install -e`); registering the class by hand works for every kind of install.
    Returns the launcher's module (its checks run before anything is submitted)."""
    from hydra.core.plugins import Plugins
    from hydra_plugins.stilts_launcher import slurm

    Plugins.instance().register(slurm.SlurmLauncher)
    return slurm


def check_slurm_resources(trainer: DictConfig) -> None:
    """Before submitting: what the trainer asks for must be a number SLURM can allocate."""
    devices = trainer.get("devices")
    distributed = str(trainer.get("strategy") or "").startswith("ddp")
    if (distributed or str(trainer.get("accelerator")) in GPU_ACCELERATORS) and not isinstance(devices, int):
        raise StiltsError(f"trainer.devices={devices} cannot be requested from SLURM: with hydra/launcher=slurm set "
                          "trainer.devices=N, the GPUs (or DDP processes) each node runs")


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
    searchpath = list(HydraConfig.get().searchpath)  # the config folders its presets and declared tasks come from
    overrides += [f"hydra.searchpath=[{','.join(searchpath)}]"] if searchpath else []
    command = [sys.executable, "-m", "stilts.train", *overrides, f"paths.run_dir={run_dir}"]
    log.info("DDP job: running %s", " ".join(command))
    record = jobstate.current_path()
    environment = dict(os.environ, **({jobstate.RECORD_VARIABLE: str(record)} if record else {}))
    code = subprocess.run(command, check=False, env=environment).returncode
    if record is not None:  # take up what the child wrote (its stages and steps)
        jobstate.attach_record(record)
    results = read_json(run_dir / "results.json")
    if code == 0 and isinstance(results, dict):
        return {"state": "done", "score": results.get("score"), "store_bytes": results.get("store_bytes_added")}
    failure = read_json(run_dir / FAILED_FILE) or {}
    return {"state": "failed", "error": failure.get("error", f"the job's process exited with code {code}")}
