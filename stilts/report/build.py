"""`build_report`: every table and figure of a sweep written into one folder (CSV + Markdown per
table, LaTeX for the main one, PNG + SVG per figure) and a report.md that ties them together. Each
file is written atomically, so a reader never sees half of one."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from stilts.store.files import atomic_output, write_text_atomic
from stilts.report import plots, render, stats, tables
from stilts.report.load import load_runs, tidy
from stilts.report.transfer import load_rankings, ranking_check

# Each section: (file stem, title, what it shows, why it can be empty).
SECTIONS = {
    "gains": ("Gains per cell", "Every (model, setup, target) cell: mean, std and count over seeds and the gain "
              "over the matched baseline.", "no runs"),
    "diversity": ("Task diversity", "Mean gain over the setups of each kind and domain diversity, per target and "
                  "XTREME-R category.", "no setup with a matched baseline"),
    "scale": ("Model scale", "Gains of the same setups under two models, matched on setup, target and seeds, and "
              "their difference.", "no setup was run with two models"),
    "order": ("Task order", "Chains that are orders of the same tasks: per-seed paired difference and a paired "
              "test.", "no two chains order the same tasks"),
    "correlation": ("Intermediate dev metric vs gain", "Spearman and Pearson correlation of each single "
                    "intermediate task's dev metric with the target gain, bootstrap 95% intervals.",
                    "no single-task setups with a matched baseline"),
    "retrieval": ("Retrieval", "Retrieval gains for English-only vs multilingual intermediate training.",
                  "no retrieval target with a matched baseline"),
    "retrieval_families": ("Retrieval by language family", "Retrieval gains per language family.",
                           "no retrieval target with per-language scores"),
    "transfer": ("Rankings before training vs real gains", "For each `python -m stilts.rank` ranking.json under "
                 "the folders and each estimate in it: Spearman's rho of the estimate with the real gain of the "
                 "candidates the sweep trained (matched settings, mean over seeds), its p-value, and Regret@k "
                 "(Poth et al. 2021): how much of the best real score is lost by training the best of the top k "
                 "ranked candidates instead, in percent. `data_size` (Vu et al. 2020's DataSize: the candidate's "
                 "training examples) is the static baseline every estimate should beat; `seeds` and the `sd` "
                 "columns: the same check on each seed's own gains, their standard deviation over the sweep's seeds.",
                 "no ranking.json under the folders (python -m stilts.rank target=NAME writes them under "
                 "outputs/rankings), or none ranks setups this sweep trained"),
}


@dataclass
class Report:
    """What build_report made: the tables by name, the figures' stems and the files written."""
    folder: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    main_markdown: str = ""


def _stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def _write_table(report: Report, name: str, frame: pd.DataFrame, text: str | None = None) -> None:
    report.tables[name] = frame
    report.files.append(write_text_atomic(report.folder / f"{name}.csv", render.flat(frame).to_csv(index=False)))
    report.files.append(write_text_atomic(report.folder / f"{name}.md", (text or render.markdown(frame)) + "\n"))


def _write_figure(report: Report, stem: str, figure: Figure) -> list[str]:
    names = []
    for suffix in ("png", "svg"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix, dpi=150)
        with atomic_output(report.folder / f"{stem}.{suffix}") as stream:
            stream.write(buffer.getvalue())
        report.files.append(report.folder / f"{stem}.{suffix}")
        names.append(f"{stem}.{suffix}")
    return names


def build_report(paths: Sequence[str | Path], out: str | Path | None = None, benchmark: str = "xtreme",
                 test: str = "wilcoxon", models: Sequence[str] | None = None) -> Report:
    """Read every results.json under `paths` and write the report into `out` (default: the first
    path's `report/` folder). `benchmark` picks the category means; `test` the paired test of task
    order; `models` the two models of the scale comparison (default: the first two labels)."""
    runs = load_runs(*paths)
    first = Path(paths[0])
    report = Report(Path(out) if out else (first if first.is_dir() else first.parent) / "report")
    report.folder.mkdir(parents=True, exist_ok=True)
    report.files.append(write_text_atomic(report.folder / "results.csv", tidy(runs).to_csv(index=False)))
    report.tables["runs"] = runs

    main = tables.main_table(runs, benchmark)
    report.main_markdown = render.markdown(render.main_cells(main, lambda cell: f"**{cell}**"))
    _write_table(report, "main", main, report.main_markdown)
    report.files.append(write_text_atomic(report.folder / "main.tex",
                                          render.latex(render.main_cells(main, lambda cell: rf"\textbf{{{cell}}}"))))
    computed = {
        "gains": tables.gains(runs).drop(columns=["setting", "target_setting", "setup_id", "column"]),
        "diversity": tables.diversity(runs),
        "scale": tables.scale(runs, models),
        "order": stats.order(runs, test),
        "correlation": stats.correlation(runs),
        "retrieval": tables.retrieval(runs),
        "retrieval_families": tables.retrieval_families(runs),
        "transfer": ranking_check(runs, load_rankings(*paths)),
    }
    lines = _preamble(paths, runs, benchmark)
    lines += ["## Main table", "", "Mean ± std over seeds (gain over the same model's no-intermediate baseline); "
              "the best mean per column in bold.", "", report.main_markdown, "",
              "Files: `main.csv`, `main.md`, `main.tex`.", ""]
    lines += _unmatched_section(report, tables.unmatched(runs))
    lines += ["## Gain heatmaps", ""]
    for model in runs.model.unique():
        png, svg = _write_figure(report, f"heatmap_{_stem(model)}", plots.heatmap(runs, model))
        lines += [f"![gains of {model}]({png})", "", f"`{png}`, `{svg}`", ""]
    for name, frame in computed.items():
        title, what, empty = SECTIONS[name]
        lines += [f"## {title}", "", what, ""]
        if frame.empty:
            lines += [f"Nothing to show: {empty}.", ""]
            continue
        _write_table(report, name, frame)
        lines += [render.markdown(frame), "",
                  f"Files: `{name}.csv`, `{name}.md`.", ""]
        if name == "correlation":
            for model in runs[runs.kind == "task"].model.unique():
                png, _ = _write_figure(report, f"correlation_{_stem(model)}", plots.correlation_scatter(runs, model))
                lines += [f"![dev score vs gain, {model}]({png})", ""]
    lines += ["## Per language", ""]
    for column in tables.target_order(list(runs.column.unique())):
        frame = tables.per_language(runs, column)
        if frame.empty:
            continue
        name = f"languages_{_stem(column)}"
        _write_table(report, name, frame)
        lines += [f"### {column}", "", "Gain per language over the matched baseline (mean over seeds).", "",
                  render.markdown(frame), ""]
    report.files.append(write_text_atomic(report.folder / "report.md", "\n".join(lines)))
    return report


def _preamble(paths: Sequence[str | Path], runs: pd.DataFrame, benchmark: str) -> list[str]:
    skipped = runs.attrs.get("skipped", [])
    lines = ["# stilts report", "",
             f"{len(runs)} runs from {', '.join(f'`{path}`' for path in paths)}: "
             f"{runs.model.nunique()} model(s), {runs.setup.nunique()} intermediate setup(s), "
             f"{runs.column.nunique()} target(s), seeds {', '.join(map(str, sorted(runs.seed.unique())))}. "
             f"Category means follow {benchmark.upper()}; scores are XTREME scores on a 0-100 scale. "
             "A missing value is shown as –, never as 0.", ""]
    if skipped:
        lines += [f"Skipped {len(skipped)} damaged or incomplete results.json: "
                  + ", ".join(f"`{path}`" for path in skipped), ""]
    return lines


def _unmatched_section(report: Report, missing: pd.DataFrame) -> list[str]:
    if missing.empty:
        return []
    _write_table(report, "unmatched", missing)
    return ["## Runs without a matched baseline", "",
            "These cells have no no-intermediate run of the same model, setting, languages and evaluation split, "
            "so they have no gain (they are never compared with another setting's baseline):", "",
            render.markdown(missing), ""]
