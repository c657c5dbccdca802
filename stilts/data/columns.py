"""Whole columns of a features Dataset, read from its arrow table where possible: indexing a Dataset
deep-copies its schema on every call, which dominated scoring small evaluation sets."""

from __future__ import annotations

from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc


def read_column(features: datasets.Dataset, name: str) -> list[Any]:
    """A column as a list, read from arrow directly where the set has no index mapping (indexing a
    Dataset deep-copies its schema on every call, the largest cost of scoring a small set)."""
    if features._indices is None:
        return features.data.column(name).to_pylist()
    return features[name]


def feature_lengths(features: datasets.Dataset) -> list[int]:
    """Tokens per feature; a multiple-choice feature counts its longest choice (its padded width)."""
    if features._indices is None and pa.types.is_integer(features.data.schema.field("input_ids").type.value_type):
        return pc.list_value_length(features.data.column("input_ids")).to_pylist()
    return [max(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids) for ids in features["input_ids"]]
