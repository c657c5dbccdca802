"""What a task is: static facts (format, languages, splits, labels, metric), no tunables.

Tunables (epochs, lengths, batch sizes) live in the task's YAML under conf/; the pipeline reads
both and never switches on task names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

Head = Literal["classification", "span_qa", "tagging", "multiple_choice", "mlm", "dual_encoder", "retrieval"]
# What a task is about; mixtures can be defined by domain (`intermediate.mix.domains=[commonsense]`).
DOMAINS = ("qa", "nli", "paraphrase", "commonsense", "syntax", "entities", "retrieval", "language_modelling")
Example = dict[str, Any]
Reader = Callable[[Path], list[Example]]
# Scorer: (gold examples, example-level predictions, language) -> metrics on a 0-100 scale.
Scorer = Callable[[Sequence[Example], Sequence[Any], str], dict[str, float]]
# Retrieval targets are scored on sentence embeddings: Embed maps texts (or (text, second segment)
# pairs) to L2-normalised vectors, and Retrieve(embed, data root, languages, split, target settings)
# gives, per language, (metrics, predictions file suffix and text).
Embed = Callable[[Sequence[str | tuple[str, str]]], Any]
Retrieve = Callable[[Embed, Path, Sequence[str], str, Mapping[str, Any]], dict[str, tuple[dict[str, float], str, str]]]
NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})  # a retrieval target's settings when none are given
# A file template, or a bundle of templates that must all match (a task built from several datasets).
FileTemplate = str | tuple[str, ...]


@dataclass(frozen=True)
class HubSource:
    """Where the task lives on the Hugging Face Hub and how its rows become stilts examples. Every
    source is a repository of data files (`datasets` >= 4 refuses loading scripts), recorded with
    its features in stilts/tasks/common/hub_schema.json."""

    path: str
    name: Callable[[str], str | None]  # language -> dataset config name
    splits: Mapping[str, str]  # stilts split -> hub split
    convert: Callable[[Any, str], list[Example]]  # (hub dataset, language) -> examples
    languages: tuple[str, ...] = ()  # the languages this part serves; empty = all
    # A commit, for a repository that is not the data's original publisher (a mirror or a
    # conversion): its content cannot drift under a stage key. None = the publisher's main branch.
    revision: str | None = None

    def serves(self, split: str, language: str) -> bool:
        return split in self.splits and (not self.languages or language in self.languages)

    def describe(self, split: str, language: str) -> str:
        """`path@revision (config) split`, as the prepare table and error messages name it."""
        name = self.name(language)
        pinned = f"@{self.revision[:10]}" if self.revision else ""
        return f"{self.path}{pinned}{f' ({name})' if name else ''} {self.splits[split]}"


@dataclass(frozen=True)
class TaskSpec:
    """A task: how to read it, which head it needs and how it is scored."""

    name: str
    description: str
    head: Head
    domain: str  # one of DOMAINS
    reader: Reader | None  # None for retrieval targets, which read their files in `retrieve`
    # split -> path templates under data.root ({lang}, {split}; globs allowed), tried in order
    files: Mapping[str, tuple[FileTemplate, ...]]
    languages: tuple[str, ...]  # evaluated by default (XTREME's list)
    scorer: Scorer
    score_key: Callable[[Mapping[str, float]], float]  # metrics -> the task's XTREME score
    main_metrics: tuple[str, ...]
    labels: tuple[str, ...] = ()
    labels_from_train: bool = False  # open label sets (CCG supertags): the training data defines them
    extra_languages: tuple[str, ...] = ()  # selectable with target.languages (XTREME-R's additions)
    file_languages: Mapping[str, str] | None = None  # `{code}` in file templates (e.g. Tatoeba's ISO 639-3)
    train_language: str = "en"
    download_hint: str = ""
    hub: tuple[HubSource, ...] = ()  # every part that serves a split contributes its examples
    allow_no_answer: bool = False  # span QA: SQuAD v2-style unanswerable questions
    fallback_label: str | None = None  # tagging: label for words cut off by max_length
    scorer_needs_language: bool = False  # the official metric normalises per language (MLQA)
    retrieve: Retrieve | None = None  # retrieval targets: no training, scored on encoder embeddings
    xstilts_pool: bool = False  # one of the paper's nine English intermediate tasks (all9 and domain mixtures)
    # (glob pattern of a path under data.root, reader) for files in another format than `reader`
    # reads, e.g. XTREME's translate-train files; the first matching pattern wins.
    file_readers: tuple[tuple[str, Reader], ...] = ()
    # Evaluation splits besides the evaluated one that scoring reads (BUCC tunes its threshold on dev).
    tuned_on: tuple[str, ...] = ()
    hub_gap: str = ""  # why some languages are not on the Hub and where they come from instead
    # A task declared in YAML (stilts.tasks.common.declared): its `task:` node with every default spelled
    # out. It travels in the stage's settings, so editing the declaration makes another stage.
    definition: Mapping[str, Any] | None = None
    declared_in: str = ""  # the YAML file (or config key) that declares it

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"task {self.name!r}: domain {self.domain!r} is not one of {DOMAINS}")

    @property
    def label_to_id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def all_languages(self) -> tuple[str, ...]:
        return self.languages + self.extra_languages
