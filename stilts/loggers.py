"""Experiment loggers that survive a resume: the rows logged before the checkpoint a stage resumes
from are kept (Lightning's CSVLogger deletes an existing metrics.csv), the replayed ones dropped."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from stilts.files import write_text_atomic


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
