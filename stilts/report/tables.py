"""The report's tables, computed from `load_runs` rows: gains over the matched baseline, the main
(paper) table, per-language gains, task diversity, model scale and retrieval. Numbers only; how
they look is `stilts.report.render`'s job."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from stilts.eval.xtreme import BENCHMARKS, xtreme_score
from stilts.report.load import BASELINE
from stilts.report.languages import family

# What makes a baseline run comparable: same model and setting, same target configuration.
MATCH = ["model", "setting", "column", "target", "target_setting"]
CELL = [*MATCH, "category", "setup", "setup_id", "kind", "diversity", "multilingual"]
BENCHMARK_LABELS = {"xtreme": "XTREME", "xtreme-r": "XTREME-R"}


def _seeds(values: pd.Series) -> tuple:
    return tuple(sorted(values))


def cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std and count over seeds of each (model, setup, target) score."""
    grouped = runs.groupby(CELL, dropna=False, sort=False)
    table = grouped["score"].agg(mean="mean", std="std", n="count").reset_index()
    table["seeds"] = grouped["seed"].agg(_seeds).to_numpy()
    return table


def gains(runs: pd.DataFrame) -> pd.DataFrame:
    """Each (model, setup, target) cell with its matched baseline's mean and the gain (mean minus
    the baseline's mean); `gain` is missing when no baseline matches (see `unmatched`). The baseline
    is averaged over the cell's own seeds when it has them all (a paired comparison), else over all
    of its seeds; `baseline_n` says over how many."""
    table = cells(runs)
    baseline_scores = {key: group.set_index("seed")["score"]
                       for key, group in runs[runs.setup == BASELINE].groupby(MATCH, sort=False)}
    means, counts = [], []
    for row in table.itertuples(index=False):
        scores = baseline_scores.get(tuple(getattr(row, column) for column in MATCH))
        chosen = _same_seeds(scores, row.seeds) if scores is not None else pd.Series(dtype=float)
        means.append(chosen.mean() if len(chosen) else math.nan)
        counts.append(int(chosen.count()))
    table["baseline"], table["baseline_n"] = means, counts
    table["gain"] = table["mean"] - table["baseline"]
    return table


def _same_seeds(values: pd.DataFrame | pd.Series, seeds: Sequence) -> pd.DataFrame | pd.Series:
    """The baseline's values (indexed by seed) of `seeds` when it has every one, else all of them."""
    return values.loc[list(seeds)] if set(seeds) <= set(values.index) else values


def unmatched(runs: pd.DataFrame) -> pd.DataFrame:
    """Cells without a baseline of the same model, setting, languages and evaluation split: listed,
    never compared with another setting's baseline."""
    table = gains(runs)
    missing = table[(table.setup != BASELINE) & table.baseline.isna()]
    return missing[["model", "setup", "column", "n", "setting", "target_setting"]].reset_index(drop=True)


def seed_gains(runs: pd.DataFrame) -> pd.DataFrame:
    """Gains per seed: each run minus its matched baseline run of the same seed (for comparisons
    that must be matched on seeds)."""
    baseline = runs[runs.setup == BASELINE][[*MATCH, "seed", "score", "scores"]]
    paired = runs[runs.setup != BASELINE].merge(baseline, on=[*MATCH, "seed"], suffixes=("", "_baseline"))
    paired["gain"] = paired["score"] - paired["score_baseline"]
    return paired


def _benchmark_columns(per_seed: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """Category means and the XTREME / XTREME-R scores of each row of target scores; an overall
    score only when every task of its benchmark is there."""
    rows = []
    for _, scores in per_seed.iterrows():
        present = {task: value for task, value in scores.items() if not math.isnan(value)}
        row = {category: value for category, value in xtreme_score(present, benchmark)["categories"].items()}
        for name, label in BENCHMARK_LABELS.items():
            row[label] = xtreme_score(present, name)["score"]
        rows.append(row)
    return pd.DataFrame(rows, index=per_seed.index, dtype=float)


def target_order(columns: Sequence[str]) -> list[str]:
    """Targets in XTREME's order, then XTREME-R's extra ones, then any other."""
    order = [task for categories in (BENCHMARKS["xtreme"], BENCHMARKS["xtreme-r"])
             for tasks in categories.values() for task in tasks]
    rank = {task: index for index, task in enumerate(dict.fromkeys(order))}
    return sorted(columns, key=lambda column: (rank.get(column.split(" [")[0], len(rank)), column))


def main_table(runs: pd.DataFrame, benchmark: str = "xtreme") -> pd.DataFrame:
    """The paper's table: rows (model, setup), columns (column, stat) for each target, the category
    means of `benchmark` and the XTREME / XTREME-R scores (present only when some seed has every
    task), stats mean, std and n over seeds and the gain over the matched baseline. Averages are
    taken per seed, over that seed's targets."""
    wide = runs.pivot_table(index=["model", "setup", "seed"], columns="column", values="score", aggfunc="first")
    wide = wide[target_order(list(wide.columns))]
    task_of = runs.drop_duplicates("column").set_index("column")["target"]
    averages = _benchmark_columns(wide.set_axis([task_of[column] for column in wide.columns], axis=1), benchmark)
    per_seed = pd.concat([wide, averages], axis=1).dropna(axis=1, how="all")
    grouped = per_seed.groupby(level=["model", "setup"], sort=False)
    mean = grouped.mean()
    gain = pd.DataFrame(math.nan, index=mean.index, columns=mean.columns)
    for model, setup in mean.index:
        if (model, BASELINE) in mean.index:
            baseline = _same_seeds(per_seed.loc[(model, BASELINE)], per_seed.loc[(model, setup)].index)
            gain.loc[(model, setup)] = (mean.loc[(model, setup)] - baseline.mean()).to_numpy()
    # A target's gain is against its matched baseline (same target settings), never another's;
    # an average's only when both sides average the same targets.
    for row in gains(runs).itertuples(index=False):
        gain.loc[(row.model, row.setup), row.column] = row.gain
    members = {category: [column for column in wide.columns if task_of[column] in tasks]
               for category, tasks in BENCHMARKS[benchmark].items()}
    for (model, setup), row in mean.iterrows():
        if (model, BASELINE) not in mean.index:
            continue
        for category, columns in members.items():
            present = row[columns].notna().to_numpy()
            if category in gain.columns and (present != mean.loc[(model, BASELINE), columns].notna().to_numpy()).any():
                gain.loc[(model, setup), category] = math.nan
    table = pd.concat({"mean": mean, "std": grouped.std(), "n": grouped.count(), "gain": gain}, axis=1)
    table = table.swaplevel(axis=1)[[(column, stat) for column in per_seed.columns
                                     for stat in ("mean", "std", "n", "gain")]]
    return _setup_order(table)


def _setup_order(table: pd.DataFrame) -> pd.DataFrame:
    """The baseline first, then the setups in the order given."""
    order = sorted(range(len(table)), key=lambda i: (table.index[i][0], table.index[i][1] != BASELINE, i))
    return table.iloc[order]


def gain_matrix(runs: pd.DataFrame, model: str) -> pd.DataFrame:
    """Setups x targets gains of one model (the heatmap's data), baseline left out."""
    table = gains(runs)
    table = table[(table.model == model) & (table.setup != BASELINE)]
    matrix = table.pivot_table(index="setup", columns="column", values="gain", aggfunc="first", sort=False)
    return matrix[target_order(list(matrix.columns))]


def per_language(runs: pd.DataFrame, target: str) -> pd.DataFrame:
    """Languages x (model, setup) gains on one target: each language's XTREME score, mean over
    seeds, minus the matched baseline's."""
    chosen = runs[runs.column == target]
    rows = [{"model": run.model, "setup": run.setup, "setting": run.setting, "target_setting": run.target_setting,
             "language": language, "score": score}
            for run in chosen.itertuples(index=False) for language, score in run.scores.items()]
    if not rows:
        return pd.DataFrame()
    scores = pd.DataFrame(rows).groupby(["model", "setting", "target_setting", "setup", "language"],
                                        sort=False)["score"].mean().reset_index()
    baseline = scores[scores.setup == BASELINE].drop(columns="setup").rename(columns={"score": "baseline"})
    merged = scores[scores.setup != BASELINE].merge(baseline, on=["model", "setting", "target_setting", "language"])
    merged["gain"] = merged["score"] - merged["baseline"]
    languages = list(dict.fromkeys(language for run in chosen.itertuples() for language in run.scores))
    table = merged.pivot_table(index="language", columns=["model", "setup"], values="gain", aggfunc="first", sort=False)
    return table.reindex([language for language in languages if language in table.index])


def _with_categories(table: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Target gains per row of `index`, then their XTREME-R category means."""
    wide = table.pivot_table(index=index, columns="column", values="gain", aggfunc="mean", sort=False)
    wide = wide[target_order(list(wide.columns))]
    categories = table.drop_duplicates("column").set_index("column")["category"]
    targets = list(wide.columns)
    for category in dict.fromkeys(categories[column] for column in targets):
        members = [column for column in targets if categories[column] == category]
        wide[f"{category} (mean)"] = wide[members].mean(axis=1)
    return wide


def diversity(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean gain over the setups of each kind (single task, mixture, chain) and diversity
    (single- or multi-domain, from the tasks' domains), per target and per category; `setups` counts
    the setups in the group."""
    table = gains(runs).dropna(subset=["gain"])
    table = table[table.setup != BASELINE]
    if table.empty:
        return pd.DataFrame()
    table = table.assign(group=table["diversity"] + " " + table["kind"])
    wide = _with_categories(table, ["model", "group"])
    wide.insert(0, "setups", table.groupby(["model", "group"], sort=False)["setup"].nunique())
    return wide.sort_index()


def scale(runs: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """For setups run with two models: the gain under each, matched on setup, target and seeds
    (only seeds both models and both baselines have), and their difference (second minus first).
    `models` picks the two (default: the first two model labels in sorted order)."""
    paired = seed_gains(runs)
    names = list(models) if models else sorted(paired.model.unique())[:2]
    if len(names) != 2 or not set(names) <= set(paired.model):
        return pd.DataFrame()
    first, second = (paired[paired.model == name] for name in names)
    key = ["setup", "target", "seed"]
    both = first[[*key, "gain"]].merge(second[[*key, "gain"]], on=key, suffixes=(f" {names[0]}", f" {names[1]}"))
    if both.empty:
        return pd.DataFrame()
    grouped = both.groupby(["setup", "target"], sort=False)
    table = grouped[[f"gain {names[0]}", f"gain {names[1]}"]].mean()
    table["difference"] = table[f"gain {names[1]}"] - table[f"gain {names[0]}"]
    table["seeds"] = grouped["seed"].agg(_seeds)
    return table


def retrieval(runs: pd.DataFrame) -> pd.DataFrame:
    """Retrieval targets' gains by intermediate training languages: English-only vs multilingual
    setups (any stage trained beyond English), mean over the group's setups, `setups` counted."""
    table = gains(runs)
    table = table[(table.category == "retrieval") & (table.setup != BASELINE)].dropna(subset=["gain"])
    if table.empty:
        return pd.DataFrame()
    table = table.assign(training=table["multilingual"].map({True: "multilingual", False: "English-only"}))
    wide = table.pivot_table(index=["model", "training"], columns="column", values="gain", aggfunc="mean")
    wide = wide[target_order(list(wide.columns))]
    wide.insert(0, "setups", table.groupby(["model", "training"])["setup"].nunique())
    return wide


def retrieval_families(runs: pd.DataFrame) -> pd.DataFrame:
    """Retrieval gains per language family (mean over the family's languages and the group's setups)
    for English-only vs multilingual intermediate training."""
    paired = seed_gains(runs)
    paired = paired[paired.category == "retrieval"]
    rows = [{"model": run.model, "training": "multilingual" if run.multilingual else "English-only",
             "column": run.column, "family": family(language), "gain": score - run.scores_baseline[language]}
            for run in paired.itertuples(index=False) for language, score in run.scores.items()
            if language in run.scores_baseline]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot_table(index=["model", "family"], columns=["column", "training"],
                                          values="gain", aggfunc="mean")
