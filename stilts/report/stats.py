"""The report's statistics, all from scipy: paired tests of task order and correlations of the
intermediate tasks' dev metrics with the target gains (with bootstrap intervals)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from stilts.report.tables import MATCH, gains, target_order

TESTS = {"wilcoxon": "Wilcoxon signed-rank", "ttest": "paired t-test"}
MIN_POINTS = 3  # a correlation of fewer points says nothing (and scipy's p-value is undefined)
BOOTSTRAP_RESAMPLES = 2000


def _paired_test(differences: np.ndarray, test: str) -> tuple[float, float, str]:
    """(statistic, p, note) of a paired test on per-seed differences; missing with a note when the
    test cannot say anything."""
    if len(differences) < 2:
        return math.nan, math.nan, f"{len(differences)} seed: a paired test needs at least 2"
    if np.all(differences == 0):
        return math.nan, math.nan, "no difference on any seed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "wilcoxon":
            result = stats.wilcoxon(differences)
        else:
            result = stats.ttest_1samp(differences, 0.0)  # = ttest_rel on the pairs
    return float(result.statistic), float(result.pvalue), ""


def order(runs: pd.DataFrame, test: str = "wilcoxon") -> pd.DataFrame:
    """For each pair of chains that are orders of the same tasks, per target: the per-seed paired
    difference (first minus second order; seeds both have) with mean, std, n and a paired test
    (`wilcoxon`, or `ttest` for a paired t-test), its p-value, and a note when it cannot be run."""
    if test not in TESTS:
        raise ValueError(f"unknown paired test {test!r}; expected one of {', '.join(TESTS)}")
    chains = runs[runs.kind == "chain"].assign(members=lambda frame: frame.stages.map(lambda s: tuple(sorted(s))))
    rows = []
    for (model, members, column), group in chains.groupby(["model", "members", "column"], sort=False):
        orders = list(dict.fromkeys(group.setup))
        for first, second in combinations(orders, 2):
            pair = group[group.setup == first].merge(group[group.setup == second], on=[*MATCH, "seed"],
                                                    suffixes=("_a", "_b"))
            differences = (pair.score_a - pair.score_b).to_numpy(dtype=float)
            statistic, p, note = _paired_test(differences, test)
            rows.append({"model": model, "target": column, "order a": first, "order b": second,
                         "seeds": len(differences), "mean a": pair.score_a.mean(), "mean b": pair.score_b.mean(),
                         "difference": differences.mean() if len(differences) else math.nan,
                         "std": differences.std(ddof=1) if len(differences) > 1 else math.nan,
                         "test": TESTS[test], "statistic": statistic, "p": p, "note": note})
    return pd.DataFrame(rows)


def _pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.pearsonr(x, y, axis=axis).statistic


def _spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho is Pearson's r of the ranks (vectorised, for the bootstrap's resamples)."""
    return _pearson(stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis), axis=axis)


def _bootstrap(x: np.ndarray, y: np.ndarray, statistic: Callable, seed: int) -> tuple[float, float]:
    """A percentile bootstrap 95% interval of a paired statistic, over the resamples where it is
    defined (a resample with a constant variable has no correlation); missing when too few are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap((x, y), statistic, paired=True, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES,
                                 method="percentile", rng=np.random.default_rng(seed))
    distribution = result.bootstrap_distribution[np.isfinite(result.bootstrap_distribution)]
    if len(distribution) < BOOTSTRAP_RESAMPLES / 2:
        return math.nan, math.nan
    low, high = np.percentile(distribution, [2.5, 97.5])
    return float(low), float(high)


def _correlate(x: np.ndarray, y: np.ndarray) -> dict[str, float | str]:
    row: dict[str, float | str] = {"points": len(x)}
    row.update({f"{name}{part}": math.nan for name in ("spearman", "pearson")
                for part in ("", " p", " ci low", " ci high")})
    if len(x) < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        row["note"] = (f"{len(x)} points: a correlation needs at least {MIN_POINTS}" if len(x) < MIN_POINTS
                       else "a constant variable: correlation undefined")
        return row
    for name, test, statistic in (("spearman", stats.spearmanr, _spearman), ("pearson", stats.pearsonr, _pearson)):
        result = test(x, y)
        row[name], row[f"{name} p"] = float(result.statistic), float(result.pvalue)
        row[f"{name} ci low"], row[f"{name} ci high"] = _bootstrap(x, y, statistic, seed=len(x))
    row["note"] = ""
    return row


def correlation_points(runs: pd.DataFrame) -> pd.DataFrame:
    """One point per (model, single-task setup, target, intermediate metric): the task's dev metric
    (mean over seeds; `dev_score` is the stage's model-selection score) against the target gain."""
    single = runs[runs.kind == "task"]
    rows = []
    for run in single.itertuples(index=False):
        metrics = {"dev_score": run.dev_score, **next(iter(run.intermediate_metrics.values()), {})}
        rows += [{"model": run.model, "setup": run.setup, "column": run.column, "seed": run.seed, "metric": name,
                  "value": value} for name, value in metrics.items() if not name.endswith(("total", "_thresh"))]
    if not rows:
        return pd.DataFrame()
    metrics = pd.DataFrame(rows).groupby(["model", "setup", "column", "metric"], sort=False)["value"].mean()
    cell_gains = gains(runs).set_index(["model", "setup", "column"])["gain"]
    points = metrics.reset_index().join(cell_gains, on=["model", "setup", "column"])
    return points.dropna(subset=["value", "gain"])


def correlation(runs: pd.DataFrame) -> pd.DataFrame:
    """Spearman and Pearson correlation (p-values, bootstrap 95% intervals) of each intermediate dev
    metric with the target gain, per model and target and pooled over targets; points = setups."""
    points = correlation_points(runs)
    if points.empty:
        return pd.DataFrame()
    rows = []
    for (model, metric), group in points.groupby(["model", "metric"], sort=False):
        targets = target_order(list(group.column.unique()))
        for column in [*targets, "pooled"]:
            chosen = group if column == "pooled" else group[group.column == column]
            row = _correlate(chosen.value.to_numpy(dtype=float), chosen.gain.to_numpy(dtype=float))
            rows.append({"model": model, "target": column, "metric": metric, **row})
    return pd.DataFrame(rows)
