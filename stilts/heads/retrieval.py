"""Retrieval targets (BUCC, Tatoeba, LAReQA, Mewsli-X): nothing trained, scored on sentence embeddings;
gold and predictions share a format (Tatoeba indices, BUCC id pairs, `{query: [candidate ids]}`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stilts.heads.base import HeadType, Metrics
from stilts.tasks.common.sources import read_file
from stilts.tasks.spec import TaskSpec


class Retrieval(HeadType):
    name = "retrieval"
    gold_field = None

    def score_file(self, spec: TaskSpec, gold: Path, pred: Path, language: str, **options: Any) -> Metrics:
        return spec.scorer(read_file(spec, gold), read_file(spec, pred), language)


HEAD = Retrieval()
