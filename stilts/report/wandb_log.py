"""`python -m stilts.report ... --wandb`: the report's tables and figures logged to one W&B run
(job_type "report") in the sweep's group, next to the sweep's own runs."""

from __future__ import annotations

import pandas as pd

from stilts.errors import StiltsError
from stilts.report.build import Report
from stilts.report.render import flat


def _common(values: pd.Series, what: str) -> str | None:
    found = sorted(set(values.dropna()))
    if len(found) > 1:
        raise StiltsError(f"the runs log to several W&B {what}s ({', '.join(found)}); choose one with --wandb-{what}")
    return found[0] if found else None


def _table(frame: pd.DataFrame):
    import wandb

    frame = flat(frame)
    return wandb.Table(dataframe=frame.map(lambda value: value if isinstance(value, (int, float, str)) else str(value)))


def log_report(report: Report, group: str | None = None, project: str | None = None) -> str:
    """Log every table (as a wandb.Table) and figure (as a wandb.Image); returns the W&B run's id.
    The group and project default to those the runs were logged with (logger=wandb)."""
    import wandb

    runs = report.tables["runs"]
    group = group or _common(runs.wandb_group, "group")
    project = project or _common(runs.wandb_project, "project") or "stilts"
    run = wandb.init(project=project, group=group, job_type="report", name=f"report-{group or 'sweep'}",
                     dir=str(report.folder), config={"runs": len(runs), "folder": str(report.folder)})
    try:
        run.log({f"tables/{name}": _table(frame) for name, frame in report.tables.items() if name != "runs"})
        run.log({f"plots/{path.stem}": wandb.Image(str(path)) for path in report.files if path.suffix == ".png"})
    finally:
        run.finish()
    return run.id
