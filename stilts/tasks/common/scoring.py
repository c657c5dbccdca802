"""Adapters from example-level predictions to the official metric functions in stilts.eval.

One adapter per head, so every task of a head scores the same way; the task picks the variant
(SQuAD v1.1 vs v2.0) and its XTREME score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from stilts.eval.classification import accuracy
from stilts.eval.mlqa import mlqa
from stilts.eval.qa import Answer, squad_v1, squad_v2
from stilts.eval.tagging import tagging_scores, token_accuracy
from stilts.tasks.spec import Example


def score_labels(examples: Sequence[Example], predictions: Sequence[Any], language: str = "en") -> dict[str, float]:
    """Accuracy for classification and multiple choice (predicted label per example)."""
    return accuracy([example["label"] for example in examples], list(predictions))


def score_tags(examples: Sequence[Example], predictions: Sequence[Sequence[str]], language: str = "en") -> dict[str, float]:
    """XTREME's seqeval F1 plus token accuracy."""
    return tagging_scores([example["tags"] for example in examples], [list(p) for p in predictions])


def score_tag_accuracy(examples: Sequence[Example], predictions: Sequence[Sequence[str]],
                       language: str = "en") -> dict[str, float]:
    """Token accuracy only (CCG supertagging)."""
    return token_accuracy([example["tags"] for example in examples], [list(p) for p in predictions])


def _qa_gold(examples: Sequence[Example]) -> dict[str, list[str]]:
    return {example["id"]: list(example["answers"]["text"]) for example in examples}


def _qa_predictions(examples: Sequence[Example], predictions: Sequence[str | None]) -> dict[str, str]:
    """None = no prediction: the official scripts score such a question 0 and say so."""
    return {example["id"]: answer for example, answer in zip(examples, predictions) if answer is not None}


def score_squad_v1(examples: Sequence[Example], predictions: Sequence[str], language: str = "en") -> dict[str, float]:
    """SQuAD v1.1 EM/F1 (XQuAD, MLQA-style and TyDiQA-GoldP in XTREME)."""
    return squad_v1(_qa_gold(examples), _qa_predictions(examples, predictions))


def score_squad_v2(examples: Sequence[Example], predictions: Sequence[str], language: str = "en") -> dict[str, float]:
    """SQuAD v2.0 exact/F1 with unanswerable questions; with the model's no-answer odds (decoded
    `Answer`s) also the official best-threshold scores."""
    odds = {example["id"]: answer.null_odds for example, answer in zip(examples, predictions)
            if isinstance(answer, Answer)}
    return squad_v2(_qa_gold(examples), _qa_predictions(examples, predictions),
                    odds if len(odds) == len(examples) else None)


def score_mlqa(examples: Sequence[Example], predictions: Sequence[str], language: str = "en") -> dict[str, float]:
    """MLQA's official EM/F1 with its per-language normalisation."""
    return mlqa(_qa_gold(examples), _qa_predictions(examples, predictions), language)


def score_mlm(examples: Sequence[Example], predictions: Sequence[Sequence[float]], language: str = "en") -> dict[str, float]:
    """Masked-token accuracy (0-100) and perplexity over every masked token of the set; each
    prediction is [tokens predicted right, masked tokens, their summed negative log-likelihood]."""
    correct, total, nll = (sum(p[i] for p in predictions) for i in range(3))
    if not total:
        return {"accuracy": 0.0, "perplexity": float("inf"), "masked_tokens": 0.0}
    return {"accuracy": 100.0 * correct / total, "perplexity": math.exp(nll / total), "masked_tokens": float(total)}


def qa_score(metrics: Mapping[str, float]) -> float:
    """XTREME's QA score: the mean of exact match and F1 (v1.1 or v2.0 key names)."""
    exact = metrics["exact_match"] if "exact_match" in metrics else metrics["exact"]
    return (exact + metrics["f1"]) / 2


def metric(name: str):
    """The XTREME score of a single-metric task."""
    return lambda metrics: metrics[name]
