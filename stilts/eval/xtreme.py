"""XTREME and XTREME-R benchmark scores from per-task scores (task names are stilts' target names).

A task's score is its XTREME score averaged over the task's test languages: accuracy for
classification and Tatoeba, F1 for tagging and BUCC, the mean of EM and F1 for QA (XTREME's
evaluate.py `avg_metric`), mAP@20 for Mewsli-X and LAReQA. The caller computes it; here only the
aggregation happens.

How the overall score is formed follows google-research/xtreme's evaluate.py, the script its README
says scores leaderboard submissions (commit da430dd06cc7344ceb2e7cb030219656ebf0606a, which added
`--xtreme_version xtreme-r`): for either benchmark `overall_scores['all_task']` is the mean of
`avg_metric` over *all tasks* of the version (`XTREME_TASK2LANGS` / `XTREME_R_TASK2LANGS`, ten tasks
for XTREME-R, LAReQA included), and a group's score is the mean of its tasks. For XTREME this also
reproduces the "Avg" of the XTREME paper's mBERT row (59.6; the mean of the category means would be
60.4). The mean of the four category means is reported beside it as `category_mean`, labelled, since
some papers quote that.

Categories follow the papers' task tables. evaluate.py's XTREME-R `retrieval` group lists only
Tatoeba and Mewsli-X because it has no LAReQA scorer; here LAReQA counts as retrieval, as in the
XTREME-R paper (Ruder et al. 2021, Table 1). The overall score does not depend on the grouping.

Either way the overall score exists only when every task of the benchmark has a score; category
scores are reported for whatever tasks are present.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

XTREME_CATEGORIES: dict[str, tuple[str, ...]] = {
    "classification": ("xnli", "pawsx"),
    "structured_prediction": ("udpos", "panx"),
    "question_answering": ("xquad", "mlqa", "tydiqa"),
    "retrieval": ("bucc", "tatoeba"),
}
XTREME_R_CATEGORIES: dict[str, tuple[str, ...]] = {
    "classification": ("xnli", "xcopa"),
    "structured_prediction": ("udpos", "panx"),
    "question_answering": ("xquad", "mlqa", "tydiqa"),
    "retrieval": ("tatoeba", "mewslix", "lareqa"),
}
BENCHMARKS: dict[str, dict[str, tuple[str, ...]]] = {
    "xtreme": XTREME_CATEGORIES,
    "xtreme-r": XTREME_R_CATEGORIES,
}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def xtreme_score(task_scores: Mapping[str, float], benchmark: str = "xtreme") -> dict[str, Any]:
    """Category means and the overall score of `benchmark` ("xtreme" or "xtreme-r").

    Returns {"benchmark", "aggregation": "tasks", "tasks": {task: score}, "categories": {category: mean
    over its present tasks, or None when it has none}, "score": the benchmark's overall score (the task
    mean, as evaluate.py) or None, "task_mean" (the same) and "category_mean" (the mean of the category
    means, labelled, for papers that quote it), "missing": [tasks]}.
    `tasks` keeps only the benchmark's tasks, in benchmark order; other keys of `task_scores` are
    ignored. `score` is None unless every task is present (`missing` then lists the absent ones).
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {', '.join(BENCHMARKS)}")
    categories = BENCHMARKS[benchmark]
    tasks: dict[str, float] = {}
    missing: list[str] = []
    category_scores: dict[str, float | None] = {}
    for category, members in categories.items():
        present = []
        for task in members:
            if task not in task_scores:
                missing.append(task)
                continue
            value = task_scores[task]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"score of task {task!r} is {value!r}, not a finite number")
            tasks[task] = float(value)
            present.append(tasks[task])
        category_scores[category] = _mean(present) if present else None
    task_mean = category_mean = None
    if not missing:
        task_mean = _mean(list(tasks.values()))
        category_mean = _mean([value for value in category_scores.values() if value is not None])
    return {
        "benchmark": benchmark,
        "aggregation": "tasks",
        "tasks": tasks,
        "categories": category_scores,
        "score": task_mean,
        "task_mean": task_mean,
        "category_mean": category_mean,
        "missing": missing,
    }


def _describe(document: Mapping[str, Any]) -> str:
    chain = " -> ".join([*document["intermediate"], document["target"]])
    return f"{document['model']} {chain} (seed {document['seed']})"


def collect_task_scores(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per-target score from results.json documents; several seeds of one target are averaged.

    All documents must share the model and the intermediate-task chain, since a benchmark score mixing
    them is meaningless: ValueError names two documents that differ. Also a ValueError for a document
    without the needed keys, a non-finite score, or a (target, seed) pair given twice.
    """
    by_target: dict[str, list[float]] = {}
    seen: set[tuple[str, Any]] = set()
    first: Mapping[str, Any] | None = None
    for index, document in enumerate(results):
        absent = [key for key in ("target", "intermediate", "model", "seed", "score") if key not in document]
        if absent:
            raise ValueError(f"results document {index} lacks {', '.join(absent)}")
        target, score = document["target"], document["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(
                f"results document {index} ({_describe(document)}) has score {score!r}, not a finite number"
            )
        setup = (document["model"], list(document["intermediate"]))
        if first is None:
            first = document
        elif setup != (first["model"], list(first["intermediate"])):
            raise ValueError(
                f"results mix models or intermediate tasks: {_describe(first)} and {_describe(document)}; "
                "a benchmark score needs one model and one intermediate chain"
            )
        key = (target, document["seed"])
        if key in seen:
            raise ValueError(f"results document {index} repeats {_describe(document)}; it would count twice")
        seen.add(key)
        by_target.setdefault(target, []).append(float(score))
    return {target: _mean(scores) for target, scores in by_target.items()}
