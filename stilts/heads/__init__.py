"""The head types, one object each (`stilts.heads.<type>.HEAD`): everything that differs by head
lives in its module, so nothing else compares head names. A task names its head (`TaskSpec.head`);
`head_of(spec)` is the object. Adding a head type: one module here (and its torch module in
`networks.py`), plus its name in `tasks.spec.Head`."""

from __future__ import annotations

from stilts.heads import classification, dual_encoder, mlm, multiple_choice, retrieval, span_qa, tagging
from stilts.heads.base import IGNORE_INDEX, FeaturizeSettings, HeadType
from stilts.tasks.spec import TaskSpec

HEADS: dict[str, HeadType] = {module.HEAD.name: module.HEAD for module in (
    classification, span_qa, tagging, multiple_choice, mlm, dual_encoder, retrieval)}

__all__ = ["HEADS", "IGNORE_INDEX", "FeaturizeSettings", "HeadType", "get_head", "head_of"]


def get_head(name: str) -> HeadType:
    return HEADS[name]


def head_of(spec: TaskSpec) -> HeadType:
    """The head type of a task."""
    return HEADS[spec.head]
