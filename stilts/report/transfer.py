"""Rankings made before training (`python -m stilts.rank`'s ranking.json) against a sweep's real gains:
does an estimate order the intermediate setups the way training them did? Per ranking file and
estimate: Spearman's rho (scipy) of the estimate with the real gain over the matched baseline, and
Regret@k (Poth et al. 2021) of the target score. A ranking meets the runs made with its settings
(its setting and target keys) whatever their seeds: the sweep's mean over seeds is the real result."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats

from stilts.errors import StiltsError
from stilts.eval.transferability import ESTIMATES, regret_at_k
from stilts.store.files import read_json
from stilts.report.tables import gains, seed_gains

log = logging.getLogger(__name__)
RANKING_FILE = "ranking.json"
REGRET_AT = (1, 3)  # Poth et al. 2021 report Regret@1 and Regret@3
SPREAD = ("spearman", *(f"regret@{k}" for k in REGRET_AT))  # also computed seed by seed
MIN_POINTS = 3  # a rank correlation of fewer candidates says nothing
REQUIRED = ("target", "model_label", "seed", "method", "setting_key", "target_key", "candidates")


def find_rankings(paths: Iterable[str | Path]) -> list[Path]:
    """Every ranking.json in or under `paths`, in a stable order."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if path.is_file():
            if path.name == RANKING_FILE:
                found.add(path.resolve())
        elif path.is_dir():
            found.update(p.resolve() for p in path.rglob(RANKING_FILE))
        else:
            raise StiltsError(f"{path}: no such file or folder")
    return sorted(found)


def _intact(document: Any) -> bool:
    if not isinstance(document, dict) or any(key not in document for key in REQUIRED):
        return False
    return isinstance(document["candidates"], list) and all(
        isinstance(record, dict) and isinstance(record.get("candidate"), str)
        and isinstance(record.get("estimates"), dict) for record in document["candidates"])


def load_rankings(*paths: str | Path) -> list[dict[str, Any]]:
    """The ranking documents under `paths` (each with its `path`); a damaged one is skipped with a warning."""
    documents = []
    for path in find_rankings(paths):
        document = read_json(path)
        if not _intact(document):
            log.warning("%s: damaged or incomplete ranking.json, skipped", path)
            continue
        documents.append(dict(document, path=str(path)))
    return documents


def _estimate_points(document: Mapping[str, Any], method: str, results: pd.DataFrame) -> pd.DataFrame:
    """(estimate, gain, mean) of each candidate that has the estimate and a real gain."""
    estimates = {record["candidate"]: record["estimates"].get(method) for record in document["candidates"]}
    points = results[results.index.isin([name for name, value in estimates.items()
                                         if isinstance(value, (int, float)) and math.isfinite(value)])]
    points = points.dropna(subset=["gain"])
    return points.assign(estimate=[estimates[name] for name in points.index])


def _check_row(document: Mapping[str, Any], method: str, points: pd.DataFrame) -> dict[str, Any]:
    row: dict[str, Any] = {"model": document["model_label"], "target": document["target"],
                           "ranking seed": document["seed"], "estimate": method,
                           "orders the ranking": method == document["method"], "candidates": len(points)}
    row.update({"spearman": math.nan, "p": math.nan, **{f"regret@{k}": math.nan for k in REGRET_AT}})
    row["best (real)"] = points.gain.idxmax() if len(points) else ""
    row["top (estimated)"] = points.estimate.idxmax() if len(points) else ""
    if len(points) < MIN_POINTS:
        row["note"] = (f"{len(points)} candidate{'s' if len(points) != 1 else ''} with a real gain: a rank correlation "
                       f"needs at least {MIN_POINTS}")
        return row
    for k in REGRET_AT:
        if k <= len(points):
            row[f"regret@{k}"] = regret_at_k(points.estimate.to_dict(), points["mean"].to_dict(), k)
    if points.estimate.nunique() == 1 or points.gain.nunique() == 1:
        row["note"] = "a constant variable: correlation undefined"
        return row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.spearmanr(points.estimate, points.gain)
    row["spearman"], row["p"], row["note"] = float(result.statistic), float(result.pvalue), ""
    return row


def _seed_spread(document: Mapping[str, Any], method: str, per_seed: pd.DataFrame) -> dict[str, Any]:
    """The same check on each seed's own gains (each run minus its baseline run of that seed): the
    standard deviation of Spearman's rho and of Regret@k over the sweep's seeds (missing under two)."""
    values: dict[str, list[float]] = {column: [] for column in SPREAD}
    seeds = sorted(per_seed.seed.unique())
    for seed in seeds:
        results = per_seed[per_seed.seed == seed].set_index("setup")[["score", "gain"]].rename(columns={"score": "mean"})
        row = _check_row(document, method, _estimate_points(document, method, results))
        for column in SPREAD:
            if math.isfinite(row[column]):
                values[column].append(row[column])
    spread: dict[str, Any] = {"seeds": len(seeds)}
    spread.update({f"{column} sd": pd.Series(found, dtype=float).std() for column, found in values.items()})
    return spread


def _matching(table: pd.DataFrame, document: Mapping[str, Any]) -> pd.DataFrame:
    """The rows of the ranking's target and settings that rank setups: single tasks and mixtures."""
    return table[(table.target == document["target"]) & (table.setting == document["setting_key"])
                 & (table.target_setting == document["target_key"]) & table.kind.isin(["task", "mixture"])]


def ranking_check(runs: pd.DataFrame, rankings: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (ranking file, estimate): how well the estimate ordered the candidates that the
    sweep trained (single tasks and mixtures with a matched baseline), on the mean over seeds, and
    how much that varies from seed to seed."""
    cells, per_seed = gains(runs), seed_gains(runs)
    rows = []
    for document in rankings:
        results = _matching(cells, document).set_index("setup")[["mean", "gain"]]
        seeds = _matching(per_seed, document)
        rows += [{**_check_row(document, method, _estimate_points(document, method, results)),
                  **_seed_spread(document, method, seeds)}
                 for method in ESTIMATES
                 if any(record["estimates"].get(method) is not None for record in document["candidates"])]
    return pd.DataFrame(rows)
