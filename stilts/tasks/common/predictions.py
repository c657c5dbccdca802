"""Predictions rendered in the official formats, so anyone can re-score a run with the official
scripts (or `python -m stilts.score`): QA `{question_id: answer}` JSON; XTREME's one prediction per
line for classification and multiple choice; one tag per line, blank line between sentences, for tagging;
per-line masked-token counts for MLM; `{query: [candidate ids]}` rankings JSON for a dual encoder's
dev pairs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stilts.tasks.common.pair_ranking import rank_pairs
from stilts.tasks.common.retrieval_formats import render_rankings
from stilts.tasks.spec import Example, TaskSpec


def render_predictions(spec: TaskSpec, examples: Sequence[Example], predictions: Sequence[Any]) -> tuple[str, str]:
    """(file suffix, file content) for one evaluation set."""
    if spec.head == "span_qa":
        answers = {example["id"]: answer for example, answer in zip(examples, predictions)}
        return ".json", json.dumps(answers, ensure_ascii=False, indent=1) + "\n"
    if spec.head == "mlm":  # per line: masked tokens right, masked tokens, summed negative log-likelihood
        return ".tsv", "".join(f"{int(c)}\t{int(n)}\t{nll:.6f}\n" for c, n, nll in predictions)
    if spec.head == "dual_encoder":
        return ".json", render_rankings(rank_pairs(examples, predictions).rankings)
    if spec.head == "tagging":
        return ".tsv", "".join("".join(f"{tag}\n" for tag in tags) + "\n" for tags in predictions)
    return ".tsv", "".join(f"{prediction}\n" for prediction in predictions)
