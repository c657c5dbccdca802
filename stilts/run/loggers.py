"""A run's experiment loggers: one instance per stage from `cfg.logger`'s factories, W&B runs closed
(and marked failed on a crash) so sweep jobs never merge, and loggers that survive a resume: the rows
logged before the checkpoint a stage resumes from are kept (Lightning's CSVLogger deletes an existing
metrics.csv), the replayed ones dropped."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from stilts.store.files import write_text_atomic


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class _ResumingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, keep_before_step: int | None) -> None:
        self.keep_before_step = keep_before_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self.keep_before_step is None or not path.is_file():
            return super()._check_log_dir_exists()
        with path.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            header, rows = list(reader.fieldnames or []), list(reader)
        kept = io.StringIO()
        writer = csv.DictWriter(kept, fieldnames=header)
        writer.writeheader()
        writer.writerows(row for row in rows if _step(row) < self.keep_before_step)
        write_text_atomic(path, kept.getvalue())
        self.metrics_keys = header


class CSVLogger(LightningCSVLogger):
    """Lightning's CSVLogger; with `keep_rows_before_step` (set by stilts on resume) it keeps the
    rows of the interrupted run logged before that step instead of deleting them."""

    def __init__(self, *args: Any, keep_rows_before_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keep_rows_before_step = keep_rows_before_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumingWriter(self.log_dir, self._keep_rows_before_step)
        return self._experiment


def make_loggers(cfg: DictConfig, version: str, job_type: str, run_name: str,
                 resume_step: int | None = None) -> list[Any]:
    """One logger instance per stage: CSV/TensorBoard version = stage, W&B run per stage (job_type =
    role). On resume, CSV keeps and TensorBoard purges from `resume_step` (the replayed steps)."""
    loggers = []
    for factory in (instantiate(node) for node in (cfg.logger or {}).values()):
        kind = getattr(factory, "func", factory)
        if issubclass(kind, WandbLogger):
            loggers.append(factory(name=f"{run_name}/{version}", job_type=job_type))
        elif issubclass(kind, CSVLogger):
            loggers.append(factory(version=version, keep_rows_before_step=resume_step))
        elif issubclass(kind, TensorBoardLogger) and resume_step is not None:
            loggers.append(factory(version=version, purge_step=resume_step))
        else:
            loggers.append(factory(version=version))
    return loggers


def finish_loggers(loggers: Sequence[Any], failed: bool) -> None:
    """Close W&B runs so sweep jobs never merge into one run; a crash marks the run failed."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and rank_zero_only.rank == 0:
            logger.experiment.finish(exit_code=1 if failed else 0)


def log_run(cfg: DictConfig, results: Mapping[str, Any], run_name: str) -> None:
    """W&B only: one run per pipeline run (job_type "run") with the composed config, the
    per-language table, the average and the XTREME score as summary values, and whether each stage
    was reused from the stage store or trained by this run."""
    for factory in (instantiate(node) for node in (cfg.logger or {}).values()):
        if not issubclass(getattr(factory, "func", factory), WandbLogger):
            continue
        logger = factory(name=run_name, job_type="run")
        names = list(dict.fromkeys(name for values in results["metrics"].values() for name in values))
        rows = [[language, results["scores"].get(language), *(values.get(name) for name in names)]
                for language, values in results["metrics"].items()]
        logger.log_table("metrics", columns=["language", "score", *names], data=rows)
        logger.experiment.config.update(results["config"], allow_val_change=True)
        logger.experiment.summary.update({
            "score": results["score"], **{f"average/{name}": value for name, value in results["average"].items()},
            **{f"stages/{name}/reused": facts["reused"] for name, facts in results["stages"].items()},
            "reused_stages": sum(facts["reused"] for facts in results["stages"].values()),
        })
        finish_loggers([logger], failed=False)
