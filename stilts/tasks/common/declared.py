"""Tasks declared in YAML: a `task:` node in `conf/intermediate/<name>.yaml` (or in the `intermediate/`
folder of any config folder on Hydra's search path) makes any Hub dataset, local folder in the Hub
layout, or parquet / JSON / CSV files an intermediate task, without Python:

    boolq:
      task:
        head: classification            # classification | multiple_choice | tagging | span_qa
        domain: qa                      # one of stilts.tasks.spec.DOMAINS (mixtures select by domain)
        source: {path: aps/super_glue, config: boolq, revision: null, splits: {train: train, dev: validation}}
        columns: {text: question, text_pair: passage, label: label}
        labels: ["False", "True"]
        metric: accuracy
      epochs: 3                         # the stage's tunables, as for every intermediate task

`source.path` is a Hub repository of data files or a local folder in the same layout (what
`datasets.load_dataset` reads); `files` (split -> path or glob under data.root) reads parquet, JSON,
JSON lines, CSV or TSV files instead. A column is a name, a dotted path into a struct
(`choices.text`), or, for text and choices, a list of columns. Every mapping is checked against the
dataset's features before a row is read (and against hub_schema.json at declaration, offline, for a
recorded source): a bad one is one error naming the YAML key and the dataset's columns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stilts.errors import DataMalformed, StiltsError
from stilts.tasks.common.hub_schema import describe_feature, recorded_source
from stilts.tasks.common.scoring import (metric, qa_score, score_labels, score_squad_v1, score_squad_v2,
                                         score_tag_accuracy, score_tags)
from stilts.tasks.spec import DOMAINS, Example, HubSource, Scorer, TaskSpec

log = logging.getLogger(__name__)

TEXT = "string"


@dataclass(frozen=True)
class Role:
    """A column role of a head: required or not, whether a list of columns may fill it, and what its
    feature must be (compact hub_schema form: "string", {"sequence": "string"}, ...; None = checked
    by the head's converter)."""

    required: bool
    many: bool = False
    kind: Any = TEXT


ID = Role(required=False, kind=None)
ROLES: dict[str, dict[str, Role]] = {
    "classification": {"id": ID, "text": Role(True, many=True), "text_pair": Role(False, many=True),
                       "label": Role(True, kind=None)},
    "multiple_choice": {"id": ID, "context": Role(False, many=True), "question": Role(False, many=True),
                        "choices": Role(True, many=True, kind=None), "label": Role(True, kind=None)},
    "tagging": {"id": ID, "tokens": Role(True, kind={"sequence": TEXT}), "tags": Role(True, kind=None)},
    "span_qa": {"id": ID, "context": Role(True), "question": Role(True),
                "answers": Role(True, kind={"text": {"sequence": TEXT}, "answer_start": {"sequence": "int"}})},
}


@dataclass(frozen=True)
class Metric:
    scorer: Scorer
    score_key: Callable[[Mapping[str, float]], float]
    main_metrics: tuple[str, ...]


ACCURACY = Metric(score_labels, metric("accuracy"), ("accuracy",))
# Per head, the official metrics stilts computes (the first is the default): SQuAD v1.1 EM/F1 or v2.0
# (unanswerable questions); seqeval entity F1 (XTREME's NER/POS score) or token accuracy.
METRICS: dict[str, dict[str, Metric]] = {
    "classification": {"accuracy": ACCURACY},
    "multiple_choice": {"accuracy": ACCURACY},
    "tagging": {"f1": Metric(score_tags, metric("f1"), ("f1", "accuracy")),
                "accuracy": Metric(score_tag_accuracy, metric("accuracy"), ("accuracy",))},
    "span_qa": {"squad": Metric(score_squad_v1, qa_score, ("exact_match", "f1")),
                "squad_v2": Metric(score_squad_v2, qa_score, ("exact", "f1"))},
}
KEYS = ("description", "head", "domain", "source", "files", "columns", "labels", "metric", "language",
        "fallback_label")
SOURCE_KEYS = ("path", "config", "revision", "splits")
SPLITS = ("train", "dev")  # an intermediate task trains on train and selects its model on dev
FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv"}


class Declaration:
    """One `task:` node, checked and with every default spelled out (`definition`: what enters the
    stage key, so editing the YAML makes another stage)."""

    def __init__(self, name: str, node: Any, where: str) -> None:
        self.name, self.where = name, where
        if not isinstance(node, Mapping):
            self.fail("", f"must be a mapping with {', '.join(KEYS[:8])}, not {node!r}")
        unknown = sorted(set(node) - set(KEYS))
        if unknown:
            self.fail(unknown[0], f"is not a task setting; valid: {', '.join(KEYS)}")
        self.head = self._choice(node, "head", tuple(ROLES))
        self.domain = self._choice(node, "domain", DOMAINS)
        self.metric = self._choice(node, "metric", tuple(METRICS[self.head]), default=next(iter(METRICS[self.head])))
        self.language = self._text(node, "language", default="en")
        self.description = self._text(node, "description", default=f"{name} ({self.head}, declared in YAML)")
        self.source = self._source(node.get("source"))
        self.files = self._files(node.get("files"))
        if self.source is None and self.files is None:
            self.fail("source", "or task.files must say where the data is: a Hub dataset or local folder "
                                "(source.path) or files under data.root (files.train, files.dev)")
        self.columns = self._columns(node.get("columns"))
        self.labels = self._labels(node.get("labels"))
        fallback = node.get("fallback_label", ("O" if "O" in self.labels else self.labels[0]) if self.head == "tagging"
                            and self.labels else None)
        if fallback is not None and (self.head != "tagging" or fallback not in self.labels):
            self.fail("fallback_label", f"is a tagging task's label for words cut off by max_length: one of task.labels, "
                                        f"not {fallback!r}")
        self.fallback_label = fallback
        self.definition = {"description": self.description, "head": self.head, "domain": self.domain,
                           "source": self.source, "files": self.files, "columns": self.columns,
                           "labels": list(self.labels), "metric": self.metric, "language": self.language,
                           "fallback_label": fallback}

    # -- checking the node -------------------------------------------------------------------------
    def fail(self, key: str, message: str) -> None:
        raise StiltsError(f"{self.where}: task{'.' + key if key else ''} {message}")

    def _choice(self, node: Mapping, key: str, valid: Sequence[str], default: str | None = None) -> str:
        value = node.get(key, default)
        if value not in valid:
            self.fail(key, f"must be one of {', '.join(valid)}, not {value!r}")
        return value

    def _text(self, node: Mapping, key: str, default: str) -> str:
        value = node.get(key, default)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, not {value!r}")
        return value

    def _source(self, source: Any) -> dict[str, Any] | None:
        if source is None:
            return None
        if not isinstance(source, Mapping) or not isinstance(source.get("path"), str) or not source["path"].strip():
            self.fail("source", "must be a mapping with path (a Hub dataset id or a local folder), and optionally "
                                f"config, revision and splits, not {source!r}")
        unknown = sorted(set(source) - set(SOURCE_KEYS))
        if unknown:
            self.fail(f"source.{unknown[0]}", f"is not a source setting; valid: {', '.join(SOURCE_KEYS)}")
        for key in ("config", "revision"):
            if source.get(key) is not None and not isinstance(source[key], str):
                self.fail(f"source.{key}", f"must be a string or null, not {source[key]!r}")
        splits = source.get("splits") or {"train": "train", "dev": "validation"}
        self._split_names("source.splits", splits, str)
        path = source["path"]
        local = Path(path).expanduser()
        if path.startswith(("/", ".", "~")) and not local.is_dir():
            self.fail("source.path", f"{path!r} is not a folder (a local dataset in the Hub layout, or a Hub id)")
        return {"path": str(local.resolve()) if local.is_dir() else path, "config": source.get("config"),
                "revision": source.get("revision"), "splits": {split: splits[split] for split in SPLITS}}

    def _split_names(self, key: str, splits: Any, kind: type | tuple[type, ...]) -> None:
        if not isinstance(splits, Mapping) or any(split not in splits for split in SPLITS):
            self.fail(key, f"must map the stilts splits {' and '.join(SPLITS)} to the dataset's, not {splits!r}")
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown:
            self.fail(f"{key}.{unknown[0]}", f"is not a stilts split of an intermediate task ({', '.join(SPLITS)})")
        for split in SPLITS:
            if not isinstance(splits[split], kind) or not splits[split]:
                self.fail(f"{key}.{split}", f"must name the dataset's split or files, not {splits[split]!r}")

    def _files(self, files: Any) -> dict[str, list[str]] | None:
        if files is None:
            return None
        self._split_names("files", files, (str, list))
        spelled = {split: [files[split]] if isinstance(files[split], str) else list(files[split]) for split in SPLITS}
        for split, patterns in spelled.items():
            for pattern in patterns:
                if not isinstance(pattern, str) or Path(pattern).is_absolute() or Path(pattern).suffix not in FORMATS:
                    self.fail(f"files.{split}", f"{pattern!r} must be a path under data.root ending in "
                                                f"{', '.join(FORMATS)}")
        return spelled

    def _columns(self, columns: Any) -> dict[str, str | list[str]]:
        roles = ROLES[self.head]
        if not isinstance(columns, Mapping):
            self.fail("columns", f"must map the {self.head} roles ({', '.join(roles)}) to the dataset's columns, "
                                 f"not {columns!r}")
        unknown = sorted(set(columns) - set(roles))
        if unknown:
            self.fail(f"columns.{unknown[0]}", f"is not a {self.head} column role; valid: {', '.join(roles)}")
        missing = [role for role, spec in roles.items() if spec.required and role not in columns]
        if missing:
            self.fail(f"columns.{missing[0]}", f"is needed by a {self.head} task (the column holding it)")
        for role, value in columns.items():
            names = value if isinstance(value, list) and roles[role].many else [value]
            if not names or not all(isinstance(name, str) and name for name in names):
                allowed = "a column name or a list of them" if roles[role].many else "a column name"
                self.fail(f"columns.{role}", f"must be {allowed}, not {value!r}")
        return {role: list(value) if isinstance(value, list) else value for role, value in columns.items()}

    def _labels(self, labels: Any) -> tuple[str, ...]:
        needed = self.head in ("classification", "tagging")
        if labels is None and not needed:
            return ()
        if not isinstance(labels, list) or not labels or any(isinstance(label, (dict, list)) for label in labels):
            what = ("the label names, in the order of the dataset's integer labels" if needed
                    else "the choice keys in choice order (e.g. [A, B, C, D]) when the label column holds keys")
            self.fail("labels", f"must be a non-empty list of {what}, not {labels!r}")
        names = tuple(str(label) for label in labels)
        if len(set(names)) != len(names):
            self.fail("labels", f"names a label twice: {list(names)}")
        return names

    # -- the dataset's side --------------------------------------------------------------------------
    def check_features(self, features: Mapping[str, Any], dataset: str) -> None:
        """Every mapped column exists with a feature its role can read (`features` in hub_schema's
        compact form); else one error naming the YAML key and the dataset's columns."""
        for role, value in self.columns.items():
            for name in value if isinstance(value, list) else [value]:
                found = _feature_at(features, name)
                key = f"columns.{role}"
                if found is None:
                    self.fail(key, f"names {name!r}, which {dataset} does not have; its columns: "
                                   f"{', '.join(_column_paths(features))}")
                problem = self._kind_problem(role, found, isinstance(value, list))
                if problem:
                    self.fail(key, f"names {name!r}, which is {_shown(found)} in {dataset}; {problem}")

    def _kind_problem(self, role: str, feature: Any, listed: bool) -> str | None:
        expected = ROLES[self.head][role].kind
        if role == "id":
            return None if feature in (TEXT, "int") else "an id must be a string or integer column"
        if role == "choices":
            wanted = TEXT if listed else {"sequence": TEXT}
            return None if feature == wanted else ("each listed choice must be a string column" if listed else
                                                   "choices must be a list-of-strings column (or a list of columns)")
        if role == "label":
            plain = ("int", TEXT, "bool") if self.head == "classification" else ("int", TEXT)
            return None if feature in plain or _class_names(feature) is not None else (
                "a label column must hold class labels, integers or strings")
        if role == "tags":
            inner = feature.get("sequence") if isinstance(feature, dict) else None
            return None if inner in ("int", TEXT) or _class_names(inner) is not None else (
                "tags must be a list of class labels, integers or strings")
        if feature != expected:
            return f"the {role} column must be {_shown(expected)}"
        return None

    def check_recorded(self) -> None:
        """A Hub source recorded in hub_schema.json is checked offline, when the task is declared."""
        if self.source is None:
            return
        entry = recorded_source(self.source["path"], self.source["config"])
        if entry is not None:
            self.check_features(entry["features"], f"{_described(self.source)} (recorded in hub_schema.json)")

    def convert(self, dataset: Any, where: str) -> list[Example]:
        """A `datasets.Dataset` -> stilts examples of the head's shape; unlabelled rows (label -1 or
        missing, as in GLUE-style test splits) are skipped and counted in the log."""
        features = {name: describe_feature(feature) for name, feature in dataset.features.items()}
        self.check_features(features, where)
        convert_row = getattr(self, f"_{self.head}")
        examples, skipped = [], 0
        for index, row in enumerate(dataset):
            identifier = str(_value(row, self.columns["id"])) if "id" in self.columns else f"{self.name}-{index}"
            example = convert_row(row, features, f"{where} row {index} (id {identifier})")
            if example is None:
                skipped += 1
            else:
                examples.append({"id": identifier, **example})
        if skipped:
            log.info("%s: skipped %d unlabelled row(s)", where, skipped)
        return examples

    def _joined(self, row: Mapping, role: str, where: str) -> str | None:
        value = self.columns.get(role)
        if value is None:
            return None
        texts = [_value(row, name) for name in (value if isinstance(value, list) else [value])]
        if any(text is None for text in texts):
            raise DataMalformed(f"{where}: task.columns.{role} {value!r} is empty (null)")
        return " ".join(texts)

    def _classification(self, row: Mapping, features: Mapping, where: str) -> Example | None:
        label = self._label_name(_value(row, self.columns["label"]), _feature_at(features, self.columns["label"]), where)
        if label is None:
            return None
        return {"text_a": self._joined(row, "text", where), "text_b": self._joined(row, "text_pair", where), "label": label}

    def _label_name(self, value: Any, feature: Any, where: str) -> str | None:
        names = _class_names(feature)
        if value is None or value == "" or (isinstance(value, int) and not isinstance(value, bool) and value < 0):
            return None
        if names is not None:
            value = names[value]
        elif isinstance(value, int) and not isinstance(value, bool):
            if value >= len(self.labels):
                raise DataMalformed(f"{where}: label {value} is not an index of task.labels {list(self.labels)} "
                                    f"({self.where})")
            value = self.labels[value]
        if str(value) not in self.labels:
            raise DataMalformed(f"{where}: label {value!r} is not in task.labels {list(self.labels)} ({self.where})")
        return str(value)

    def _multiple_choice(self, row: Mapping, features: Mapping, where: str) -> Example | None:
        choices = self.columns["choices"]
        texts = [_value(row, name) for name in choices] if isinstance(choices, list) else list(_value(row, choices))
        if any(text is None for text in texts):
            raise DataMalformed(f"{where}: task.columns.choices {choices!r} holds an empty (null) choice")
        label = _value(row, self.columns["label"])
        if label is None or label == "" or (isinstance(label, int) and label < 0):
            return None
        if isinstance(label, str):
            if self.labels:
                if label not in self.labels:
                    raise DataMalformed(f"{where}: answer {label!r} is not one of task.labels {list(self.labels)} "
                                        f"({self.where})")
                label = self.labels.index(label)
            elif label.strip().isdigit():
                label = int(label)
            else:
                raise DataMalformed(f"{where}: answer {label!r} is not a choice index; give task.labels, the choice "
                                    f"keys in choice order ({self.where})")
        if not 0 <= label < len(texts):
            raise DataMalformed(f"{where}: answer {label} is not a choice index in 0..{len(texts) - 1}")
        context = " ".join(part for part in (self._joined(row, "context", where), self._joined(row, "question", where))
                           if part)
        return {"context": context, "choices": texts, "label": label}

    def _tagging(self, row: Mapping, features: Mapping, where: str) -> Example | None:
        tokens = list(_value(row, self.columns["tokens"]))
        inner = _feature_at(features, self.columns["tags"])["sequence"]
        tags = [self._label_name(tag, inner, where) for tag in _value(row, self.columns["tags"])]
        if len(tags) != len(tokens):
            raise DataMalformed(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
        if any(tag is None for tag in tags):
            return None
        return {"tokens": tokens, "tags": tags}

    def _span_qa(self, row: Mapping, features: Mapping, where: str) -> Example | None:
        context, answers = self._joined(row, "context", where), _value(row, self.columns["answers"])
        texts, starts = list(answers["text"]), list(answers["answer_start"])
        if len(texts) != len(starts):
            raise DataMalformed(f"{where}: {len(texts)} answer texts but {len(starts)} answer_start values")
        for text, start in zip(texts, starts):
            if context[start:start + len(text)] != text:
                raise DataMalformed(f"{where}: answer {text!r} is not at answer_start {start} of its context")
        if not texts and self.metric != "squad_v2":
            raise DataMalformed(f"{where}: the question has no answer; declare metric: squad_v2 for a task with "
                                f"unanswerable questions ({self.where})")
        return {"context": context, "question": self._joined(row, "question", where),
                "answers": {"text": texts, "answer_start": starts}}


def _feature_at(features: Mapping[str, Any], path: str) -> Any:
    """The compact feature at a dotted column path, or None."""
    found: Any = features
    for part in path.split("."):
        if not isinstance(found, Mapping) or part not in found or part in ("sequence", "class_label"):
            return None
        found = found[part]
    return found


def _column_paths(features: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Column names, with the dotted paths into structs (choices.text) a mapping may use."""
    paths = []
    for name, feature in features.items():
        paths.append(f"{prefix}{name}")
        if isinstance(feature, Mapping) and not {"sequence", "class_label"} & set(feature):
            paths += _column_paths(feature, f"{prefix}{name}.")
    return paths


def _class_names(feature: Any) -> list[str] | None:
    return feature["class_label"] if isinstance(feature, Mapping) and "class_label" in feature else None


def _shown(feature: Any) -> str:
    return feature if isinstance(feature, str) else str(feature).replace("'", "")


def _value(row: Mapping, path: str) -> Any:
    for part in path.split("."):
        row = row[part]
    return row


def read_rows(path: Path) -> Any:
    """A parquet, JSON (lines) or CSV/TSV file as a `datasets.Dataset` in memory (parquet written by
    `datasets` keeps its class labels)."""
    import datasets

    builder = FORMATS.get(path.suffix)
    if builder is None:
        raise StiltsError(f"{path}: stilts reads declared tasks' files as {', '.join(FORMATS)}")
    options = {"delimiter": "\t"} if path.suffix == ".tsv" else {}
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", keep_in_memory=True, **options)
    except Exception as error:  # the builders raise many types for one cause: not a readable file
        reason = str(error).splitlines()[0] if str(error) else ""
        raise DataMalformed(f"{path}: not a readable {builder} file ({type(error).__name__}: {reason})") from None


def declared_spec(name: str, node: Any, where: str) -> TaskSpec:
    """The TaskSpec of a `task:` node (`where`: the YAML file, or the config key it came from)."""
    declaration = Declaration(name, node, where)
    declaration.check_recorded()
    chosen = METRICS[declaration.head][declaration.metric]
    source = declaration.source
    hub = ()
    if source is not None:
        hub = (HubSource(path=source["path"], name=lambda language, config=source["config"]: config,
                         splits=source["splits"], revision=source["revision"],
                         convert=lambda dataset, language: declaration.convert(dataset, _described(source))),)
    files = {split: tuple(patterns) for split, patterns in (declaration.files or {}).items()}
    return TaskSpec(
        name=name,
        description=declaration.description,
        head=declaration.head,
        domain=declaration.domain,
        reader=lambda path: declaration.convert(read_rows(path), str(path)),
        files=files,
        languages=(declaration.language,),
        train_language=declaration.language,
        scorer=chosen.scorer,
        score_key=chosen.score_key,
        main_metrics=chosen.main_metrics,
        labels=declaration.labels if declaration.head != "multiple_choice" else (),
        allow_no_answer=declaration.metric == "squad_v2",
        fallback_label=declaration.fallback_label,
        download_hint=f"{name} is declared in {where} (task.source / task.files).",
        hub=hub,
        definition=declaration.definition,
        declared_in=where,
    )


def _described(source: Mapping[str, Any]) -> str:
    """`path (config)`, as errors name a declared source."""
    config = f" ({source['config']})" if source["config"] else ""
    return f"{source['path']}{config}"
