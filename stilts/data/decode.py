"""Per-feature model predictions -> one prediction per example, in the form the scorers take."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from stilts.data.columns import read_column
from stilts.eval.qa import Answer
from stilts.tasks.spec import Example, TaskSpec


def decode_span_qa(examples: Sequence[Example], example_index: Sequence[int], offsets: Sequence[Sequence[Sequence[int]]],
                   predictions: Mapping[int, Mapping[str, Any]], allow_no_answer: bool,
                   max_answer_length: int = 30) -> list[str]:
    """Best-scoring valid span over all windows of each question (run_qa.py's post-processing);
    with unanswerable questions, the empty answer wins when the null score is higher, and each
    answer carries those odds (an `Answer`, for SQuAD v2's best-threshold scores)."""
    windows: dict[int, list[int]] = defaultdict(list)
    for feature, example in enumerate(example_index):
        windows[example].append(feature)
    answers = []
    for i, example in enumerate(examples):
        best_score, best_text, null_score = float("-inf"), "", float("inf")
        for feature in windows[i]:
            prediction, feature_offsets = predictions[feature], offsets[feature]
            null_score = min(null_score, prediction["null_score"])
            for start, start_logit in zip(prediction["start_index"], prediction["start_logit"]):
                for end, end_logit in zip(prediction["end_index"], prediction["end_logit"]):
                    if (start >= len(feature_offsets) or end >= len(feature_offsets) or feature_offsets[start][0] < 0
                            or feature_offsets[end][0] < 0 or end < start or end - start + 1 > max_answer_length):
                        continue
                    if start_logit + end_logit > best_score:
                        best_score = start_logit + end_logit
                        best_text = example["context"][feature_offsets[start][0]:feature_offsets[end][1]]
        if allow_no_answer:
            odds = null_score - best_score
            answers.append(Answer("" if odds > 0 else best_text, odds))
        else:
            answers.append(best_text)
    return answers


def decode(spec: TaskSpec, labels: Sequence[str], examples: Sequence[Example], features,
           predictions: Mapping[int, Any]) -> list[Any]:
    """Example-level predictions: label strings, choice indices, tag lists or answer texts."""
    if spec.head == "span_qa":
        return decode_span_qa(examples, read_column(features, "example_index"), read_column(features, "offsets"),
                              predictions, spec.allow_no_answer)
    by_example = dict(zip(read_column(features, "example_index"), (predictions[f] for f in range(len(features)))))
    if spec.head == "classification":
        return [labels[by_example[i]] for i in range(len(examples))]
    if spec.head in ("multiple_choice", "mlm", "dual_encoder"):
        return [by_example[i] for i in range(len(examples))]
    tags = []
    for i, example in enumerate(examples):
        predicted = [labels[label] for label in by_example[i]]
        # Words cut off by max_length get the task's fallback label, so lengths always match gold.
        tags.append(predicted + [spec.fallback_label] * (len(example["tokens"]) - len(predicted)))
    return tags
