"""Sequence(-pair) classification (XNLI, PAWS-X, MNLI, QQP, ANLI+): the first token's state, one label
per example; XTREME's prediction file is one label per line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.heads.base import WHOLE_SEQUENCE, Batch, FeaturizeSettings, HeadType, Metrics, check_count, read_lines
from stilts.tasks.spec import Example, TaskSpec


class Classification(HeadType):
    name = "classification"
    row_labels = "each example, its label"
    leep_rows = "sequence"  # from its first token

    def featurize(self, batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
        """Pairs, or single texts where a task has no second text (a declared task without text_pair)."""
        pairs = batch["text_b"] if any(text is not None for text in batch["text_b"]) else None
        encoded = tokenizer(batch["text_a"], pairs, truncation=True, max_length=settings.max_length)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "labels": [label_to_id[label] for label in batch["label"]], "example_index": batch["example_index"]}

    def example_prediction(self, spec: TaskSpec, labels: Sequence[str], example: Example, prediction: Any) -> Any:
        return labels[prediction]

    def with_stand_in_gold(self, spec: TaskSpec, examples: Sequence[Example]) -> list[Example]:
        return [example if example["label"] is not None else {**example, "label": spec.labels[0]} for example in examples]

    def score_file(self, spec: TaskSpec, gold: Path, pred: Path, language: str, **options: Any) -> Metrics:
        """PRED is XTREME's prediction file: one label string per line, in gold order."""
        examples = self.read_gold(spec, gold)
        labels = [line.strip() for line in read_lines(pred)]
        for number, label in enumerate(labels, start=1):
            if label not in spec.labels:
                raise StiltsError(f"{pred}:{number}: label {label!r} is not in the label set {list(spec.labels)}")
        check_count(gold, len(examples), pred, len(labels))
        return spec.scorer(examples, labels, language)

    def probe_rows(self, features: Mapping[str, list], index: int, sequences: list) -> list[tuple[int, int, int]]:
        sequences.append(features["input_ids"][index])
        return [(len(sequences) - 1, WHOLE_SEQUENCE, features["labels"][index])]

    def module(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        from stilts.heads.networks import ClassificationHead

        return ClassificationHead(hidden_size, num_labels, dropout)


HEAD = Classification()
