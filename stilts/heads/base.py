"""What every head type shares, and the `HeadType` each one fills in: how its examples become
features, how per-feature predictions become one prediction per example, the prediction file it
writes and reads back, which evaluation sets carry gold, the rows a transferability probe reads,
the torch module it trains and how it joins a stage. Nothing outside `stilts.heads` asks which head
a task has; it asks the task's head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.tasks.common.sources import read_file
from stilts.tasks.spec import Example, TaskSpec

IGNORE_INDEX = -100  # a label position no loss or prediction reads (later sub-words, padding)
PLACEHOLDER_MIN_EXAMPLES = 20  # a labelled set this large whose gold is all one value has placeholder gold
Batch = Mapping[str, list[Any]]
Metrics = dict[str, float]
WHOLE_SEQUENCE = -1  # a probe row that is a whole sequence (its first token), not one position


@dataclass(frozen=True)
class FeaturizeSettings:
    max_length: int = 256
    doc_stride: int = 128  # QA: tokens shared by consecutive windows of a long context
    max_query_length: int = 64  # QA: longer questions are cut, as in XTREME

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "FeaturizeSettings":
        """The featurization settings among a task's tunables (its YAML node); the rest are ignored."""
        return cls(**{field.name: settings[field.name] for field in fields(cls) if field.name in settings})

    def check_qa_window(self) -> None:
        """Question (<= max_query_length) + 4 special tokens must leave more than doc_stride context tokens."""
        if self.doc_stride >= self.max_length - self.max_query_length - 4:
            raise StiltsError(
                f"doc_stride ({self.doc_stride}) must be smaller than max_length ({self.max_length}) minus "
                f"max_query_length ({self.max_query_length}) minus 4 special tokens; lower doc_stride or raise max_length"
            )


def read_lines(path: Path) -> list[str]:
    """A prediction file's lines; trailing blank lines are dropped so a final newline (or two) is not a prediction."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except UnicodeDecodeError as error:
        raise StiltsError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def check_count(gold: Path, n_gold: int, pred: Path, n_pred: int) -> None:
    """Line-aligned predictions only mean something when there is exactly one per gold example."""
    if n_pred != n_gold:
        raise StiltsError(f"{pred} has {n_pred} predictions but {gold} has {n_gold} examples; expected one per line")


class HeadType:
    """One head type. The defaults are those of a head whose gold is one `label` per example and
    whose prediction file holds one prediction per line."""

    name = ""
    gold_field: str | None = "label"  # the example field holding gold; None: the examples are their own gold
    row_labels: str | None = None  # what a transferability probe's labelled row is; None: no labelled rows
    decode_columns: tuple[str, ...] = ("example_index",)  # the feature columns `decode` reads
    group_by_length = True  # length-grouped batches (a dual encoder keeps its in-batch negatives random)
    trains_alone_because: str | None = None  # why its task cannot train inside a mixture stage (None: it can)
    embeds_with_pooler = False  # a retrieval recipe's last stage of this head embeds with its own pooler
    starts_from_pretrained_lm = False  # its module is the pretrained model's own head (MLM)
    masks_tokens = False  # its batches are masked anew on every pass (MLM)
    leep_rows: str | None = None  # the rows its trained head gives a label distribution for (LEEP's theta(x))

    # -- data ------------------------------------------------------------------------------------------
    def check_settings(self, settings: FeaturizeSettings) -> None:
        """Refuse featurization settings this head cannot work with (before any data is read)."""

    def check_examples(self, spec: TaskSpec, where: str, examples: Sequence[Example]) -> None:
        """Refuse a loaded set this head cannot batch (`where`: task, split, language and origin)."""

    def featurize(self, batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
        """A batched `datasets.map` function: examples -> model features (no padding: the collator pads).
        Every head type a task trains with defines it; retrieval targets are embedded, not featurized."""
        raise StiltsError(f"{self.name} examples are not featurized: its tasks are scored on sentence embeddings")

    def micro_batch_limit(self, spec: TaskSpec, settings: Mapping[str, Any], effective: int, default: int) -> int:
        """The largest micro-batch its task may use (`default`: train.micro_batch_size)."""
        return default

    def check_micro_batch(self, spec: TaskSpec, micro: int, limit: int, world_size: int) -> None:
        """Refuse a batch layout whose micro-batch (per process) this head cannot train with."""

    # -- predictions -----------------------------------------------------------------------------------
    def decode(self, spec: TaskSpec, labels: Sequence[str], examples: Sequence[Example],
               columns: Mapping[str, list], predictions: Mapping[int, Any]) -> list[Any]:
        """Per-feature predictions -> one prediction per example, in the form its scorer takes."""
        by_example = dict(zip(columns["example_index"], (predictions[f] for f in range(len(columns["example_index"])))))
        return [self.example_prediction(spec, labels, example, by_example[i]) for i, example in enumerate(examples)]

    def example_prediction(self, spec: TaskSpec, labels: Sequence[str], example: Example, prediction: Any) -> Any:
        """One example's prediction from its feature's (the model's output, as the scorer takes it)."""
        return prediction

    def render(self, spec: TaskSpec, examples: Sequence[Example], predictions: Sequence[Any]) -> tuple[str, str]:
        """(file suffix, content) of one evaluation set's predictions in the official format."""
        return ".tsv", "".join(f"{prediction}\n" for prediction in predictions)

    def score_file(self, spec: TaskSpec, gold: Path, pred: Path, language: str, **options: Any) -> Metrics:
        """Score a prediction file (this head's format) against a gold file (`python -m stilts.score`)."""
        raise StiltsError(f"{spec.name} has no prediction-file scorer ({self.name} predictions are scored while "
                          f"training; their counts are in the stage's predictions/ folder)")

    # -- gold ------------------------------------------------------------------------------------------
    def gold_values(self, examples: Sequence[Example]) -> list | None:
        """Every gold value of the set, or None when some example has none."""
        if any(example[self.gold_field] is None for example in examples):
            return None
        return [example[self.gold_field] for example in examples]

    def missing_gold(self, spec: TaskSpec, examples: Sequence[Example]) -> str | None:
        """Why the set cannot be scored (no gold, or a placeholder: XTREME's download strips test gold
        or fills it with one value), or None when it can."""
        if self.gold_field is None:
            return None
        values = self.gold_values(examples)
        what = "tags" if self.gold_field == "tags" else "labels"
        if values is None:
            return f"no gold {what}"
        if len(examples) >= PLACEHOLDER_MIN_EXAMPLES and len(set(values)) == 1:
            return f"every gold {what[:-1]} is {values[0]!r} (a placeholder)"
        return None

    def with_stand_in_gold(self, spec: TaskSpec, examples: Sequence[Example]) -> list[Example]:
        """Examples whose missing gold is filled with a stand-in, so a set without gold can be
        featurized and predicted (the stand-in is never scored)."""
        return list(examples)

    def read_gold(self, spec: TaskSpec, gold: Path) -> list[Example]:
        """Gold examples of a scoring file; label-stripped test files read fine but cannot be scored."""
        examples = read_file(spec, gold)
        if not examples:
            raise StiltsError(f"{gold}: no examples to score")
        if any(example[self.gold_field] is None for example in examples):
            raise StiltsError(f"{gold}: has no gold {self.gold_field} (a label-stripped test file?); score against "
                              "a labelled file")
        return examples

    # -- probes (stilts.rank) --------------------------------------------------------------------------
    def probe_rows(self, features: Mapping[str, list], index: int, sequences: list) -> list[tuple[int, int, int]]:
        """Append feature `index`'s sequences to `sequences`; its labelled rows (sequence, position or
        WHOLE_SEQUENCE, label)."""
        sequences.append(features["input_ids"][index])
        return []

    # -- model -----------------------------------------------------------------------------------------
    def module(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        """A fresh torch module of this head (stilts.heads.networks; torch is imported only here)."""
        raise StiltsError(f"{self.name} heads are not built fresh")
