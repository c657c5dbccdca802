"""The recorded schema of every Hugging Face Hub source (hub_schema.json beside this module): repository,
revision, configs, splits, the features the converters read and published row counts.

Runs check a loaded dataset's features against it, so a dataset that changed under stilts (a renamed
column, a string label where a class label was) fails in one line naming the column instead of
training on something else; the tests check every task's HubSource against it offline.

Features are written compactly, the way dataset cards write them: "string", "int", "float", "bool";
{"class_label": [names]}; {"sequence": feature}; and {column: feature, ...} for a struct.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from stilts.errors import DataMalformed

SCHEMA_FILE = Path(__file__).with_name("hub_schema.json")


@cache
def hub_schema() -> tuple[Mapping[str, Any], ...]:
    return tuple(json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["sources"])


def recorded_source(path: str, config: str | None) -> Mapping[str, Any] | None:
    """The schema entry of a repository's config, or None when it is not recorded."""
    return next((entry for entry in hub_schema() if entry["path"] == path and config in entry["configs"]), None)


def published_rows(path: str, config: str | None, split: str) -> int | None:
    """The published row count of a recorded split (per config, or `*` for every config), if known."""
    rows = (recorded_source(path, config) or {}).get("rows", {})
    return {**rows.get("*", {}), **rows.get(config or "", {})}.get(split)


def describe_feature(feature: Any) -> Any:
    """A `datasets` feature in the schema's compact form (integer widths are not told apart: the
    converters read Python ints, and Hub conversions change int32 to int64)."""
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return {"class_label": list(feature.names)}
    if isinstance(feature, (datasets.List, datasets.LargeList)):
        return {"sequence": describe_feature(feature.feature)}
    if isinstance(feature, datasets.Sequence):  # older `datasets`: Sequence is a class of its own
        return {"sequence": describe_feature(feature.feature)}
    if isinstance(feature, Mapping):
        return {name: describe_feature(value) for name, value in feature.items()}
    if isinstance(feature, datasets.Value):
        dtype = feature.dtype
        return ("int" if dtype.startswith(("int", "uint")) else "float" if dtype.startswith("float")
                else "string" if dtype in ("string", "large_string") else dtype)
    return type(feature).__name__


def feature_differences(recorded: Mapping[str, Any], features: Mapping[str, Any]) -> list[str]:
    """What differs between the recorded columns and a dataset's (extra columns are fine)."""
    found = {name: describe_feature(feature) for name, feature in features.items()}
    differences = []
    for column, expected in recorded.items():
        if column not in found:
            differences.append(f"column {column!r} is missing (columns: {', '.join(found)})")
        elif found[column] != expected:
            differences.append(f"column {column!r} is {json.dumps(found[column])}, recorded as {json.dumps(expected)}")
    return differences


def check_hub_features(part: Any, language: str, features: Mapping[str, Any]) -> None:
    """A loaded Hub dataset must have the recorded features of its source (part: a HubSource)."""
    entry = recorded_source(part.path, part.name(language))
    if entry is None:
        return
    differences = feature_differences(entry["features"], features)
    if differences:
        raise DataMalformed(
            f"{part.path}{f' ({part.name(language)})' if part.name(language) else ''}: the dataset does not have the "
            f"schema stilts reads: {'; '.join(differences)} (stilts/tasks/common/hub_schema.json). The repository changed: "
            "pin HubSource.revision to a commit with the recorded schema, or update the converter and the schema."
        )
