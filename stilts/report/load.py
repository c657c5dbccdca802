"""Reading a sweep: every results.json under some folders, as one row per run (`load_runs`) or as a
tidy table with one row per (model, setup, target, seed, language, metric) (`load`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from stilts.errors import StiltsError
from stilts.eval.xtreme import XTREME_CATEGORIES, XTREME_R_CATEGORIES
from stilts.store.identity import digest
from stilts.store.results import read_results

log = logging.getLogger(__name__)
RESULTS_FILE = "results.json"
BASELINE = "none"  # the setup label of the no-intermediate baseline (as in +intermediate=none)
# Each target's XTREME-R category (PAWS-X and BUCC, XTREME only, keep their XTREME one).
CATEGORY = {task: category for categories in (XTREME_CATEGORIES, XTREME_R_CATEGORIES)
            for category, tasks in categories.items() for task in tasks}


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Every results.json in or under `paths` (a results.json itself counts), in a stable order."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if path.is_file():
            found.add(path.resolve())
        elif path.is_dir():
            found.update(p.resolve() for p in path.rglob(RESULTS_FILE) if ".sweeps" not in p.parts)
        else:
            raise StiltsError(f"{path}: no such file or folder (give sweep folders or results.json files)")
    return sorted(found)


def _number(value: Any) -> float:
    """A finite number, else NaN: a missing or non-finite value stays missing, never 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return math.nan
    return float(value)


def _stage_kind(stages: list[Mapping[str, Any]]) -> str:
    if not stages:
        return "baseline"
    if len(stages) > 1:
        return "chain"
    return "mixture" if stages[0].get("mixture") else "task"


def _run_row(path: Path, document: Mapping[str, Any]) -> dict[str, Any]:
    stages = list(document.get("intermediate_stages") or [])
    config = document.get("config") or {}
    domains = sorted({domain for stage in stages for domain in (stage.get("domains") or {}).values()})
    kind = _stage_kind(stages)
    single = stages[0] if kind in ("task", "mixture") else None
    dev_score = math.nan
    if single is not None:
        facts = (document.get("stages") or {}).get(f"1-{single['name']}") or {}
        dev_score = _number(facts.get("dev_score"))
    target_config = config.get("target") or {}
    languages = tuple(document["metrics"])
    return {
        "model": document.get("model_label") or document["model"],
        "model_name": document["model"],
        "setup": " → ".join(document["intermediate"]) or BASELINE,
        "setup_id": digest(config.get("intermediate") or {}, length=8),
        "kind": kind,
        "stages": tuple(document["intermediate"]),
        "tasks": tuple(task for stage in stages for task in stage.get("tasks", [])),
        "domains": tuple(domains),
        "diversity": None if kind == "baseline" else ("single-domain" if len(domains) == 1 else "multi-domain"),
        "multilingual": bool(any(stage.get("multilingual") for stage in stages)),
        "target": document["target"],
        # Retrieval targets: which recipe made the number (frozen encoder, fine-tuned, dual encoder).
        "recipe": (document.get("retrieval") or {}).get("recipe"),
        "category": CATEGORY.get(document["target"]),
        "seed": document["seed"],
        "score": _number(document["score"]),
        "scores": {language: _number(value) for language, value in (document.get("scores") or {}).items()},
        "metrics": document["metrics"],
        "average": document["average"],
        "dev_score": dev_score,
        "intermediate_metrics": {task: {name: _number(value) for name, value in values.items()}
                                 for task, values in (document.get("intermediate_metrics") or {}).items()},
        "languages": languages,
        "eval_split": target_config.get("eval_split"),
        # Runs compare only within one setting (everything but setup, seed and target) and one
        # target configuration; results.json written before these keys existed fall back to the
        # model, languages and evaluation split.
        "setting": document.get("setting_key") or digest([document["model"]], length=8),
        "target_setting": document.get("target_key") or digest([document["target"], languages,
                                                                target_config.get("eval_split")], length=8),
        "wandb_project": ((config.get("logger") or {}).get("wandb") or {}).get("project"),
        "wandb_group": ((config.get("logger") or {}).get("wandb") or {}).get("group"),
        "reused_stages": sum(bool(facts.get("reused")) for facts in (document.get("stages") or {}).values()),
        "path": str(path),
    }


def _disambiguate(runs: pd.DataFrame) -> pd.DataFrame:
    """Distinct setups never share a label (two mixtures both called `mix`), nor settings of one
    model (a sweep over lr), nor two configurations of a target (`column`, the target's label in
    tables): the label gets a short key then, so no cell mixes them. A retrieval target scored by
    one of XTREME-R's trained recipes is labelled with it, e.g. `lareqa (dual_encoder)`."""
    runs["column"] = [target if recipe in (None, "frozen_encoder") or pd.isna(recipe) else f"{target} ({recipe})"
                      for target, recipe in zip(runs["target"], runs["recipe"])]
    for column, key in (("setup", "setup_id"), ("model", "setting"), ("column", "target_setting")):
        counts = runs.groupby(column)[key].nunique()
        clash = runs[column].isin(counts[counts > 1].index)
        runs.loc[clash, column] = runs.loc[clash, column] + " [" + runs.loc[clash, key] + "]"
    return runs


def load_runs(*paths: str | Path) -> pd.DataFrame:
    """One row per run under `paths`. A damaged or incomplete results.json is skipped with a
    warning (it is listed in `runs.attrs["skipped"]`), never half-read; a (setup, target, seed)
    that appears twice in one setting is an error, since it would count twice."""
    rows, skipped = [], []
    for path in find_results(paths):
        document = read_results(path)
        if document is None:
            log.warning("%s: damaged or incomplete results.json, skipped", path)
            skipped.append(str(path))
            continue
        rows.append(_run_row(path, document))
    if not rows:
        where = ", ".join(map(str, paths))
        raise StiltsError(f"no readable results.json under {where}: run a sweep there first "
                          f"(python -m stilts.train -m ...), or give the folder it wrote (outputs/runs)")
    runs = _disambiguate(pd.DataFrame(rows))
    twice = runs[runs.duplicated(["model", "setup", "target", "target_setting", "seed"], keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        paths_twice = twice[(twice.setup == first.setup) & (twice.target == first.target)
                            & (twice.seed == first.seed)].path.tolist()
        raise StiltsError(f"{first.setup} -> {first.target} seed {first.seed} ({first.model}) has results in "
                          f"{paths_twice[0]} and {paths_twice[1]}; give only one of these folders")
    runs.attrs["skipped"] = skipped
    return runs.sort_values(["model", "target", "setup", "seed"]).reset_index(drop=True)


def tidy(runs: pd.DataFrame) -> pd.DataFrame:
    """The tidy table of `runs`: one row per (model, setup, target, seed, language, metric) with
    source "target", where language "average" holds the language means and metric "score" the XTREME
    score; plus the intermediate stages' dev metrics (source "intermediate", language "dev", task =
    the intermediate task, `<mixture>/<task>` for a mixture's member)."""
    rows = []
    for run in runs.itertuples(index=False):
        common = {"model": run.model, "setup": run.setup, "target": run.target, "seed": run.seed, "path": run.path}
        languages = {**run.metrics, "average": run.average}
        for language, values in languages.items():
            values = {**values, "score": run.scores.get(language, math.nan) if language != "average" else run.score}
            rows += [{**common, "source": "target", "task": run.target, "language": language, "metric": name,
                      "value": _number(value)} for name, value in values.items()]
        rows += [{**common, "source": "intermediate", "task": task, "language": "dev", "metric": name, "value": value}
                 for task, values in run.intermediate_metrics.items() for name, value in values.items()]
    return pd.DataFrame(rows, columns=["model", "setup", "target", "seed", "source", "task", "language", "metric",
                                       "value", "path"])


def load(*paths: str | Path) -> pd.DataFrame:
    """The tidy results of every run under `paths` (see `tidy`)."""
    return tidy(load_runs(*paths))
