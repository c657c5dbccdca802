"""Examples -> what transferability estimates read (`python -m stilts.rank`): encoder input sequences
and labelled rows, featurized exactly as training featurizes them (the task's head type).

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

from stilts.errors import StiltsError
from stilts.heads import FeaturizeSettings, head_of
from stilts.tasks.spec import Example, TaskSpec


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


def probe_data(spec: TaskSpec, examples: Sequence[Example], tokenizer, settings: FeaturizeSettings,
               labelled: bool = True) -> ProbeData:
    """The sequences of `examples` as training featurizes them and, when `labelled`, their rows
    (its head type's `row_labels`); unlabelled probes (a candidate's text) need no gold."""
    if not examples:
        raise StiltsError(f"{spec.name}: no training examples to probe")
    head = head_of(spec)
    if labelled and head.row_labels is None:
        raise StiltsError(f"{spec.name}: {head.name} tasks have no labelled rows to estimate transfer on")
    head.check_settings(settings)
    label_ids = _label_ids(spec, examples) if labelled else defaultdict(int)
    features = head.featurize(_columns(examples), tokenizer=tokenizer, settings=settings, label_to_id=label_ids)
    sequences: list[list[int]] = []
    found = [row for index in range(len(features["input_ids"])) for row in head.probe_rows(features, index, sequences)]
    if not labelled:
        found = []
    elif not found:
        raise StiltsError(f"{spec.name}: none of the {len(examples)} sampled training examples gives a labelled row "
                          f"({head.row_labels}); raise rank.max_examples or max_length")
    rows = [(sequence, position) for sequence, position, _ in found]
    return ProbeData(sequences, np.asarray(rows, dtype=np.int64).reshape(-1, 2),
                     np.asarray([label for _, _, label in found], dtype=np.int64))
