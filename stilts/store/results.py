"""A run's results.json (its schema: docs/outputs.md): building it, reading it back safely (the store's
inventory and stilts.report read it), and the printed table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tabulate import SEPARATING_LINE, tabulate

from stilts.store.files import read_json

from stilts.store.stages import Stage

REQUIRED_KEYS = ("target", "intermediate", "model", "seed", "metrics", "average", "score", "run_key")


def average_metrics(per_language: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Unweighted mean over languages of every metric they all report (XTREME averages languages)."""
    names = [name for name in next(iter(per_language.values()), {}) if all(name in m for m in per_language.values())]
    return {name: sum(m[name] for m in per_language.values()) / len(per_language) for name in names}


def build_results(*, target: str, intermediate: Sequence[str], model: str, model_label: str, seed: int,
                  metrics: Mapping[str, Mapping[str, float]], scores: Mapping[str, float],
                  intermediate_metrics: Mapping[str, Mapping[str, float]], config: Mapping[str, Any],
                  no_gold: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The results.json document; `score` is the task's XTREME score averaged over languages, `scores`
    the XTREME score of each language; `model_label` names the model in reports. A language whose
    evaluation file has no gold (`no_gold`: language -> why) has predictions but no metrics, and then
    `score` is null: an average over fewer languages is not the task's XTREME score."""
    complete = bool(scores) and set(scores) >= set(metrics)
    return {
        "target": target,
        "intermediate": list(intermediate),
        "model": model,
        "model_label": model_label,
        "seed": seed,
        "metrics": {language: dict(values) for language, values in metrics.items()},
        "average": average_metrics(metrics),
        "score": sum(scores.values()) / len(scores) if complete else None,
        "scores": {language: float(value) for language, value in scores.items()},
        "intermediate_metrics": {task: dict(values) for task, values in intermediate_metrics.items()},
        "no_gold": dict(no_gold or {}),
        "config": dict(config),
        **(dict(extra) if extra else {}),
    }


def describe_stage(stage: Stage) -> dict[str, Any]:
    """What an intermediate stage trained on, for reports grouping runs (single task vs mixture,
    domains, monolingual vs multilingual)."""
    languages = {name: list(task.languages) for name, task in stage.tasks.items()}
    return {"name": stage.label, "tasks": list(stage.tasks), "languages": languages,
            "domains": {name: task.spec.domain for name, task in stage.tasks.items()},
            "multilingual": any(set(langs) != {"en"} for langs in languages.values()),
            "mixture": dict(stage.mixture) if stage.mixture is not None else None}


def intermediate_metrics(stages: Sequence[Stage], summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Each intermediate task's dev metrics (averaged over its dev languages): by task name for a
    single-task stage, by `<mixture>/<task>` for a mixture's members."""
    metrics = {}
    for stage in stages:
        for name, facts in summaries[stage.name]["tasks"].items():
            key = name if stage.mixture is None else f"{stage.label}/{name}"
            metrics[key] = average_metrics(facts["dev_metrics"])
    return metrics


RESULTS_FILE = "results.json"


def finished_results(run_dir: str | Path, key: str) -> dict[str, Any] | None:
    """The intact results.json of run `key` in run_dir (so the run can be skipped), else None. Read
    only: results are written atomically, so a reader never sees half of one."""
    results = read_results(Path(run_dir) / RESULTS_FILE)
    return results if results is not None and results["run_key"] == key else None


def read_results(path: str | Path) -> dict[str, Any] | None:
    """A results.json that parses and has every required key, else None (missing or damaged)."""
    results = read_json(path)
    if not isinstance(results, dict) or not all(key in results for key in REQUIRED_KEYS):
        return None
    return results


def format_table(results: Mapping[str, Any], columns: Sequence[str] | None = None) -> str:
    """The per-language table (tabulate) with the average and the XTREME score underneath."""
    metrics = results["metrics"]
    columns = list(columns or results["average"].keys())
    chain = " -> ".join(results["intermediate"] + [results["target"]]) if results["intermediate"] else results["target"]
    rows: list[Any] = [[language, *(values.get(column) for column in columns)] for language, values in metrics.items()]
    rows += [SEPARATING_LINE, ["average", *(results["average"].get(column) for column in columns)]]
    lines = [f"{chain}  ({results['model']}, seed {results['seed']})",
             tabulate(rows, headers=["language", *columns], floatfmt=".2f", missingval="-")]
    for language, reason in (results.get("no_gold") or {}).items():
        lines.append(f"{language}: not scored: {reason}")
    score = results["score"]
    lines.append(f"XTREME score ({results['target']}): "
                 + (f"{score:.2f}" if isinstance(score, (int, float)) and math.isfinite(score) else "- (not every language was scored)"))
    for task, values in results.get("intermediate_metrics", {}).items():
        summary = ", ".join(f"{key} {value:.2f}" for key, value in values.items() if not key.endswith("total"))
        lines.append(f"intermediate {task} (dev): {summary}")
    return "\n".join(lines)
