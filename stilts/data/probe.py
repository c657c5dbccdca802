"""Examples -> what transferability estimates read (`python -m stilts.rank`): encoder input sequences
and labelled rows, featurized exactly as training featurizes them (`featurize.FEATURIZERS`).

Every encoder input is one sequence: a multiple-choice example gives one per choice, a long QA
context one per window. A labelled row is a position in a sequence with a class, one per thing the
target's head predicts:
- classification: the sequence (position -1: the sequence as a whole), its label;
- multiple choice: each (context, choice) sequence, 1 for the right choice and 0 for the others;
- tagging: the first sub-word of each word, its tag;
- span QA: each context token of a window that holds the answer, 1 inside the answer, else 0.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stilts.data.featurize import FEATURIZERS, FeaturizeSettings
from stilts.errors import StiltsError
from stilts.model.heads import IGNORE_INDEX
from stilts.model.probe import WHOLE_SEQUENCE
from stilts.tasks.spec import Example, TaskSpec

ROW_LABELS = {  # what a row is and its class, as the ranking's table says it
    "classification": "each example, its label",
    "multiple_choice": "each (context, choice) sequence, 1 for the right choice",
    "tagging": "each word's first sub-word, its tag",
    "span_qa": "context tokens of windows that hold the answer, 1 inside it",
}


@dataclass
class ProbeData:
    """Token ids of each sequence; rows as (sequence index, position) pairs with their class ids."""
    sequences: list[list[int]]
    rows: np.ndarray  # [n, 2] int64: sequence index, position (WHOLE_SEQUENCE for the sequence itself)
    labels: np.ndarray  # [n] int64

    def subsample_rows(self, count: int, seed: int) -> ProbeData:
        """At most `count` rows, drawn uniformly with `seed` and kept in order; the sequences stay."""
        if len(self.labels) <= count:
            return self
        kept = np.sort(np.random.default_rng(seed).choice(len(self.labels), size=count, replace=False))
        return ProbeData(self.sequences, self.rows[kept], self.labels[kept])


def sample_examples(examples: Sequence[Example], count: int, seed: int) -> list[Example]:
    """At most `count` examples, drawn uniformly with `seed`, in their original order."""
    if len(examples) <= count:
        return list(examples)
    return [examples[i] for i in sorted(random.Random(seed).sample(range(len(examples)), count))]


def _columns(examples: Sequence[Example]) -> dict[str, list]:
    keys = dict.fromkeys(key for example in examples for key in example)
    columns = {key: [example.get(key) for example in examples] for key in keys}
    columns["example_index"] = list(range(len(examples)))
    return columns


def _label_ids(spec: TaskSpec, examples: Sequence[Example]) -> dict[str, int]:
    """The head's label ids; an open label set (CCG) is numbered from the tags of these examples."""
    if not spec.labels_from_train:
        return spec.label_to_id
    return {tag: i for i, tag in enumerate(sorted({tag for example in examples for tag in example["tags"]}))}


def _rows(head: str, features: dict[str, list]) -> tuple[list[list[int]], list[tuple[int, int]], list[int]]:
    sequences, rows, labels = [], [], []
    for index, ids in enumerate(features["input_ids"]):
        if head == "multiple_choice":
            for choice, choice_ids in enumerate(ids):
                rows.append((len(sequences), WHOLE_SEQUENCE))
                labels.append(int(choice == features["labels"][index]))
                sequences.append(choice_ids)
            continue
        if head == "dual_encoder":  # [query, candidate]: text only
            sequences.extend(ids)
            continue
        sequence = len(sequences)
        sequences.append(ids)
        if head == "classification":
            rows.append((sequence, WHOLE_SEQUENCE))
            labels.append(features["labels"][index])
        elif head == "tagging":
            for position, label in enumerate(features["labels"][index]):
                if label != IGNORE_INDEX:
                    rows.append((sequence, position))
                    labels.append(label)
        elif head == "span_qa":
            start, end = features["start_positions"][index], features["end_positions"][index]
            if start == 0:  # the answer is not in this window (or there is none)
                continue
            for position, offset in enumerate(features["offsets"][index]):
                if offset[0] >= 0:  # a context token
                    rows.append((sequence, position))
                    labels.append(int(start <= position <= end))
    return sequences, rows, labels


def probe_data(spec: TaskSpec, examples: Sequence[Example], tokenizer, settings: FeaturizeSettings,
               labelled: bool = True) -> ProbeData:
    """The sequences of `examples` as training featurizes them and, when `labelled`, their rows
    (ROW_LABELS); unlabelled probes (a candidate's text) need no gold."""
    if not examples:
        raise StiltsError(f"{spec.name}: no training examples to probe")
    if labelled and spec.head not in ROW_LABELS:
        raise StiltsError(f"{spec.name}: {spec.head} tasks have no labelled rows to estimate transfer on")
    if spec.head == "span_qa":
        settings.check_qa_window()
    label_ids = _label_ids(spec, examples) if labelled else defaultdict(int)
    features = FEATURIZERS[spec.head](_columns(examples), tokenizer=tokenizer, settings=settings,
                                      label_to_id=label_ids)
    sequences, rows, labels = _rows(spec.head, features)
    if not labelled:
        rows, labels = [], []
    elif not rows:
        raise StiltsError(f"{spec.name}: none of the {len(examples)} sampled training examples gives a labelled row "
                          f"({ROW_LABELS[spec.head]}); raise rank.max_examples or max_length")
    return ProbeData(sequences, np.asarray(rows, dtype=np.int64).reshape(-1, 2), np.asarray(labels, dtype=np.int64))
