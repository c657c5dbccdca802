"""Whether an evaluation set carries gold: XTREME's download strips test labels (XNLI and PAWS-X test
files lose their label column, UD POS and PAN-X test files their tags, QA test files keep one empty
answer per question) or replaces them by a placeholder (XCOPA test: every label 0). Scoring such a
set gives a number that looks real and means nothing (XNLI "scores" ~33), so it is never scored.

The placeholder rule: a labelled set of at least PLACEHOLDER_MIN_EXAMPLES examples whose gold labels
(classification, multiple choice) or tags (tagging) are all one value. Real data of a task with more
than one label never looks like that at that size; a smaller set (a tiny sample) is taken as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from stilts.tasks.common.readers import qa_has_gold
from stilts.tasks.spec import Example, TaskSpec

PLACEHOLDER_MIN_EXAMPLES = 20


def _gold_values(spec: TaskSpec, examples: Sequence[Example]) -> list | None:
    """Every gold label (or tag) of the set, or None when some example has none."""
    if spec.head == "tagging":
        if any(example["tags"] is None for example in examples):
            return None
        return [tag for example in examples for tag in example["tags"]]
    if any(example["label"] is None for example in examples):
        return None
    return [example["label"] for example in examples]


def missing_gold(spec: TaskSpec, examples: Sequence[Example]) -> str | None:
    """Why the set cannot be scored (no gold, or a placeholder label), or None when it can."""
    if spec.head in ("mlm", "dual_encoder", "retrieval"):
        return None  # masked tokens and paired candidates are their own gold
    if spec.head == "span_qa":
        return None if qa_has_gold(examples) else "no gold answers (every question's answer is empty)"
    values = _gold_values(spec, examples)
    if values is None:
        return "no gold " + ("tags" if spec.head == "tagging" else "labels")
    if len(examples) >= PLACEHOLDER_MIN_EXAMPLES and len(set(values)) == 1:
        return f"every gold {'tag' if spec.head == 'tagging' else 'label'} is {values[0]!r} (a placeholder)"
    return None


def with_stand_in_gold(spec: TaskSpec, examples: Sequence[Example]) -> list[Example]:
    """Examples whose missing gold is filled with a stand-in, so a set without gold can be featurized
    and predicted (the stand-in is never scored: the set is marked as having no gold)."""
    if spec.head == "tagging":
        stand_in = spec.fallback_label or spec.labels[0]
        return [example if example["tags"] is not None else {**example, "tags": [stand_in] * len(example["tokens"])}
                for example in examples]
    if spec.head in ("classification", "multiple_choice"):
        stand_in = spec.labels[0] if spec.head == "classification" else 0
        return [example if example["label"] is not None else {**example, "label": stand_in} for example in examples]
    return list(examples)
