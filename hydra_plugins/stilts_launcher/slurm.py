"""SLURM through Hydra's submitit launcher, made to end well (`hydra/launcher=slurm`).

The stock launcher waits for its jobs with `job.results()` and raises at the first cancelled or
killed one, so the sweep's table is never printed. This one (a subclass, same parameters; the sweep
callback first refuses, with `check_accounting`, a cluster whose job states cannot be read: submitit
would wait forever) turns an
sbatch refusal into one line, logs the sweep's progress while it waits, and makes every job that
ended without finishing (cancelled, killed, timed out for good, node failure, out of memory) a
failed row with its scheduler state and first error line. Requeueing after a time limit or a
preemption is submitit's (`max_num_timeout`, `signal_delay_s`; the job saves its resume
checkpoint first, see `stilts.model.resume.StopSignals`).

The resources follow the trainer (`conf/hydra/launcher/slurm.yaml`, `stilts.sweep.slurm_gpus`).
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import DictConfig, OmegaConf

from stilts import jobstate
from stilts.errors import StiltsError
from stilts.sweep import fail, record_path, records_dir, sweep_id

log = logging.getLogger("stilts")

POLL_SECONDS = (5.0, 60.0)  # job states are read (one sacct call for the whole sweep) every 5 s, slowing to 60 s
PROGRESS_SECONDS = 60.0  # how often the waiting command logs the sweep's counts


def check_accounting() -> None:
    """submitit learns that a job ended (and how) from `sacct`: without job accounting a cancelled or
    killed job is never seen to end and the submitting command waits forever."""
    try:
        answer = subprocess.run(["sacct", "--noheader", "-X", "-j", "1", "-o", "JobID"], capture_output=True,
                                text=True, timeout=60)
    except FileNotFoundError:
        raise StiltsError("hydra/launcher=slurm: no `sacct` on this machine: submit from a machine with SLURM's "
                          "client commands (a login node)") from None
    except subprocess.TimeoutExpired:
        raise StiltsError("hydra/launcher=slurm: `sacct` did not answer within 60 s; is slurmdbd up? Try again "
                          "when `sacct` answers") from None
    if answer.returncode != 0:
        said = first_error_line(answer.stderr) or f"exit code {answer.returncode}"
        raise StiltsError(f"hydra/launcher=slurm: this cluster answers no job accounting query (sacct: {said}), so "
                          "the submitting command could never tell that a cancelled or killed job has ended and would "
                          "wait forever. Ask the cluster's admins to enable job accounting (slurmdbd), or run the "
                          "sweep without SLURM (hydra/launcher=joblib)")


def first_error_line(text: str) -> str:
    """The line of a job's error log that says what went wrong: SLURM's `*** JOB ... CANCELLED ***`
    or an `error:` line, else the last line of a Python traceback, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "***" in line or "error:" in line.lower():
            return line
    if any(line.startswith("Traceback") for line in lines):
        return next(line for line in reversed(lines) if not line.startswith(("File ", "^", "~")))
    return lines[-1] if lines else ""


class SlurmLauncher(SubmititSlurmLauncher):
    """Hydra's submitit SLURM launcher that always ends with the sweep table (see the module)."""

    def _executor(self) -> Any:
        """The executor Hydra's launcher builds: submitit's own parameters, the rest prefixed."""
        import submitit

        init_keys = {"submitit_folder", "max_num_timeout"}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
                                         slurm_max_num_timeout=self.params["max_num_timeout"])
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{key if key in base else f"{self._EXECUTOR}_{key}": value
                                      for key, value in self.params.items() if key not in init_keys})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError, FailedSubmissionError

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        arguments = [(list(overrides), "hydra.sweep.dir", initial_job_idx + index,
                      f"job_id_for_{initial_job_idx + index}", Singleton.get_state())
                     for index, overrides in enumerate(job_overrides)]
        try:
            jobs = self._executor().map_array(self, *zip(*arguments))
        except (FailedJobError, FailedSubmissionError) as error:
            fail(f"sbatch refused the sweep's jobs: {first_error_line(str(error))}. Check hydra.launcher.partition, "
                 "its limits (timeout_min, mem_gb, cpus_per_task) and, on a partition without GPUs, use trainer=cpu "
                 "or trainer=ddp_cpu")
        log.info("Submitted %d SLURM jobs (array %s, each %s); their logs: %s. Follow them with: "
                 "python -m stilts.sweep status %s", len(jobs), jobs[0].job_id.split("_")[0],
                 launcher_resources(self.params), str(self.params["submitit_folder"]).replace("%j", "<job id>"),
                 sweep_dir)
        self._await(jobs)
        return [self._outcome(job, number) for job, (_, _, number, _, _) in zip(jobs, arguments)]

    def _await(self, jobs: Sequence[Any]) -> None:
        """Wait for every job, reading their states in one query per poll, and log the counts."""
        from stilts.sweep.status import read_sweep

        folder = records_dir(self.config.hydra.sweep.dir, sweep_id())
        started = last_report = time.monotonic()
        while True:
            jobs[0].watcher.update()
            if all(job.done() for job in jobs):
                return
            if time.monotonic() - last_report >= PROGRESS_SECONDS:
                counts = read_sweep(folder, ended=False).counts
                log.info("Sweep %s: %s", sweep_id(), ", ".join(f"{n} {state}" for state, n in counts.items()))
                last_report = time.monotonic()
            time.sleep(min(max(POLL_SECONDS[0], (time.monotonic() - started) / 10), POLL_SECONDS[1]))

    def _outcome(self, job: Any, number: int) -> JobReturn:
        """The job's own return; for a job that ended without one, a failed record with the
        scheduler's state and the first line of its error log."""
        from submitit.core.utils import UncompletedJobError

        folder = records_dir(self.config.hydra.sweep.dir, sweep_id())
        try:
            result = job.results()[0]
        except UncompletedJobError as error:
            state = job.state
            try:
                said = first_error_line(job.stderr() or "")
            except OSError:
                said = ""
            record_failed_job(folder, number, f"{state}: {said or first_error_line(str(error))}", slurm_job=job.job_id)
            log.error("Job %d (SLURM %s) ended %s: %s", number, job.job_id, state, said)
            return JobReturn(overrides=[], status=JobStatus.COMPLETED)
        if result.status == JobStatus.FAILED:  # the job's function raised (Hydra would re-raise it here)
            record_failed_job(folder, number, f"{type(result._return_value).__name__}: {result._return_value}")
            return JobReturn(overrides=result.overrides, status=JobStatus.COMPLETED)
        return result


def record_failed_job(folder: Path, number: int, error: str, **fields: Any) -> None:
    """Mark a job failed in its sweep's records unless it recorded its own end."""
    path = record_path(folder, number)
    record = jobstate.read_record(path) or {"job": number}
    if record.get("state") in jobstate.FINAL_STATES:
        return
    jobstate.write_record(path, dict(record, state="failed", error=error, **fields))


def launcher_resources(params: Mapping[str, Any]) -> dict[str, Any]:
    """The resources a sweep's jobs ask for, for the log (gpus, tasks, cpus, memory, time)."""
    keys = ("nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "partition")
    return {key: params.get(key) for key in keys if params.get(key) is not None}
