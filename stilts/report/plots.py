"""The report's figures (matplotlib Figure objects, no global pyplot state, so they render in
notebooks and save headless): the gain heatmap and the dev-metric vs gain scatter plots."""

from __future__ import annotations

import math

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from stilts.report.stats import correlation_points
from stilts.report.tables import gain_matrix, target_order


def heatmap(runs: pd.DataFrame, model: str) -> Figure:
    """Gains (setup x target) of one model over its baseline, in diverging colours centred on 0;
    a missing gain is left blank."""
    matrix = gain_matrix(runs, model)
    figure = Figure(figsize=(2.5 + 0.75 * max(len(matrix.columns), 2), 2.5 + 0.45 * max(len(matrix), 1)),
                    layout="constrained")
    axes = figure.add_subplot()
    if matrix.empty:
        axes.text(0.5, 0.5, "no gains: no setup has a matched baseline", ha="center", va="center")
        axes.set_axis_off()
        return figure
    limit = max(float(matrix.abs().max().max()), 1e-9)
    sns.heatmap(matrix, ax=axes, cmap="RdBu", center=0, vmin=-limit, vmax=limit, annot=True, fmt=".1f",
                linewidths=0.5, cbar_kws={"label": "gain over no intermediate task"})
    axes.set_title(f"{model}: gain over the baseline (mean over seeds)")
    axes.set_xlabel("target")
    axes.set_ylabel("intermediate")
    return figure


def grouped_bars(table: pd.DataFrame, title: str, ylabel: str = "gain") -> Figure:
    """A bar per (row, column) of a wide table (e.g. diversity groups x targets), grouped by column,
    a line at 0; missing values leave a gap."""
    frame = table.select_dtypes("number").drop(columns=["setups"], errors="ignore")
    frame.index = [" ".join(map(str, key)) if isinstance(key, tuple) else str(key) for key in frame.index]
    long = frame.rename_axis("group").reset_index().melt(id_vars="group", var_name="column", value_name="value")
    figure = Figure(figsize=(2.0 + 0.9 * max(frame.shape[1], 2), 4.0), layout="constrained")
    axes = figure.add_subplot()
    sns.barplot(long.dropna(), x="column", y="value", hue="group", ax=axes)
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xlabel("")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=45)
    return figure


def correlation_scatter(runs: pd.DataFrame, model: str, metric: str = "dev_score") -> Figure:
    """One panel per target: each single intermediate task's dev `metric` against its target gain,
    the tasks labelled."""
    points = correlation_points(runs)
    if not points.empty:
        points = points[(points.model == model) & (points.metric == metric)]
    columns = target_order(list(points.column.unique())) if not points.empty else []
    n_columns = min(3, max(len(columns), 1))
    n_rows = max(math.ceil(len(columns) / n_columns), 1)
    figure = Figure(figsize=(4.2 * n_columns, 3.4 * n_rows), layout="constrained")
    if not columns:
        axes = figure.add_subplot()
        axes.text(0.5, 0.5, f"no single-task setups with {metric} and a gain", ha="center", va="center")
        axes.set_axis_off()
        return figure
    for index, column in enumerate(columns, start=1):
        axes = figure.add_subplot(n_rows, n_columns, index)
        chosen = points[points.column == column]
        axes.scatter(chosen.value, chosen.gain)
        for point in chosen.itertuples(index=False):
            axes.annotate(point.setup, (point.value, point.gain), textcoords="offset points", xytext=(3, 3),
                          fontsize=8)
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.set_title(column)
        axes.set_xlabel(f"intermediate {metric} (dev)")
        axes.set_ylabel("gain")
    figure.suptitle(f"{model}: intermediate dev {metric} vs target gain")
    return figure
