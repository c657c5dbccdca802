"""The settings' schemas: Hydra structured configs (dataclasses in Hydra's ConfigStore, the `schema`
group that conf/config.yaml and conf/rank.yaml start from). They give every top-level, `train.*` and
`rank.*` key its type, so a wrong type or an unknown key fails while the config is composed, before
any folder exists. The values and their explanations stay in the YAML files; a field's `allowed`
rule says what a value may be beyond its type (positive, a fraction), and `explain` turns any
composition error into the one line the CLIs print."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from itertools import takewhile
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from stilts.errors import StiltsError

SCHEMA_GROUP = "schema"


@dataclass(frozen=True)
class Allowed:
    """What a value may be beyond its type: `text` completes "KEY must be ..."."""

    text: str
    test: Callable[[Any], bool]


def _setting(text: str, test: Callable[[Any], bool]) -> Any:
    return field(default=MISSING, metadata={"allowed": Allowed(text, test)})


def positive_int() -> Any:
    return _setting("a positive whole number", lambda value: value > 0)


def positive_number() -> Any:
    return _setting("a positive number", lambda value: value > 0)


class Choice(str, Enum):
    """A setting with a few allowed values; a member prints as its value (`cls`, not `Pooling.cls`)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)


class Pooling(Choice):
    """A sequence-level row's feature: the first token (what a classification head reads) or the mean."""

    cls = "cls"
    mean = "mean"


class Dtype(Choice):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Peft(Choice):
    """How a stage trains the encoder: all its weights, or a LoRA adapter (peft) on frozen weights."""

    full = "full"
    lora = "lora"


def check_peft(key: str, value: Any) -> None:
    """A stage's own `peft` setting (a task's or a mixture's; untyped nodes): null means train.peft."""
    if value is not None and str(value) not in {method.value for method in Peft}:
        raise StiltsError(f"{key}.peft must be one of {', '.join(method.value for method in Peft)} or null "
                         f"(train.peft), not {value!r}")


@dataclass
class LoraSettings:
    """`train.lora.*`: peft's LoraConfig (conf/config.yaml explains each)."""

    r: int = positive_int()
    alpha: float = positive_number()
    dropout: float = _setting("a number in [0, 1)", lambda value: 0 <= value < 1)
    target_modules: Optional[list[str]] = MISSING


@dataclass
class TrainSettings:
    """`train.*` (conf/config.yaml explains each)."""

    lr: float = positive_number()
    weight_decay: float = _setting("a number >= 0", lambda value: value >= 0)
    warmup_ratio: float = _setting("a number in [0, 1)", lambda value: 0 <= value < 1)
    micro_batch_size: int = positive_int()
    group_by_length: bool = MISSING
    eval_batch_size: int = positive_int()
    effective_batch_size: Optional[int] = positive_int()
    max_epochs: Optional[int] = positive_int()
    checkpoint_every_n_steps: int = positive_int()
    eval_every_steps: Optional[int] = positive_int()
    eval_subset: Optional[int] = positive_int()
    patience: Optional[int] = positive_int()
    peft: Optional[Peft] = MISSING
    lora: LoraSettings = field(default_factory=LoraSettings)


@dataclass
class PathSettings:
    """`paths.*` (conf/paths/default.yaml)."""

    output_dir: str = MISSING
    run_name: str = MISSING
    run_dir: str = MISSING
    stages_dir: str = MISSING
    cache_dir: str = MISSING


@dataclass
class StiltsConfig:
    """The training config (`python -m stilts.train`, `stilts.prepare`): the config groups' nodes
    (model, target, trainer, logger, data) are each group's own; `intermediate` maps stage names to
    task settings (stilts.checks checks those)."""

    model: Any = MISSING
    target: Any = MISSING
    trainer: Any = MISSING
    logger: Any = MISSING
    data: Any = MISSING
    paths: PathSettings = field(default_factory=PathSettings)
    seed: int = MISSING
    overwrite: bool = MISSING
    keep_checkpoints: bool = MISSING
    keep_target_encoders: bool = MISSING
    intermediate: dict[str, Any] = field(default_factory=dict)
    train: TrainSettings = field(default_factory=TrainSettings)


@dataclass
class RankSettings:
    """`rank.*` (conf/rank.yaml)."""

    max_examples: int = _setting("a whole number of at least 2", lambda value: value >= 2)
    max_features: int = _setting("a whole number of at least 2", lambda value: value >= 2)
    pooling: Pooling = MISSING
    batch_size: int = positive_int()
    dtype: Dtype = MISSING
    device: Optional[str] = MISSING


@dataclass
class RankConfig(StiltsConfig):
    """`python -m stilts.rank`: the training config and the ranking's own keys."""

    candidates: list[str] = field(default_factory=list)
    method: str = MISSING
    rank: RankSettings = field(default_factory=RankSettings)


SCHEMAS = {"train": StiltsConfig, "rank": RankConfig}


def register() -> None:
    """Hydra's ConfigStore gets the schemas as the `schema` group (conf/config.yaml: `- schema: train`)."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(group=SCHEMA_GROUP, name=name, node=schema, package="_global_")


def _field_types(schema: type) -> dict[str, Any]:
    return get_type_hints(schema)


def _optional(kind: Any) -> tuple[Any, bool]:
    if get_origin(kind) is Union and type(None) in get_args(kind):
        return next(arg for arg in get_args(kind) if arg is not type(None)), True
    return kind, False


def _describe(kind: Any, allowed: Allowed | None) -> str:
    kind, optional = _optional(kind)
    if allowed is not None:
        text = allowed.text
    elif is_dataclass(kind):
        text = "a group of settings, each set by its own key"
    elif isinstance(kind, type) and issubclass(kind, Enum):
        text = "one of " + ", ".join(member.value for member in kind)
    else:
        text = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))
    return text + (" or null" if optional else "")


def _node_schema(schema: type, path: list[str]) -> type | None:
    """The dataclass that types the node at `path` (None: an untyped node such as `target`)."""
    for key in path:
        kind = _optional(_field_types(schema).get(key))[0] if is_dataclass(schema) else None
        if not (isinstance(kind, type) and is_dataclass(kind)):
            return None
        schema = kind
    return schema


def unknown_key(key: str, valid: list[str], where: str = "") -> str:
    """`unknown setting ...; did you mean ...?` for a key nobody reads."""
    close = difflib.get_close_matches(key, sorted(valid), n=1)
    hint = f"; did you mean {where}{close[0]!r}?" if close else ""
    return (f"unknown setting {where}{key!r}{hint} Valid {'top-level keys' if not where else where + '*'}: "
            f"{', '.join(sorted(valid))}")


def _described_error(error: OmegaConfBaseException, schema: type) -> str | None:
    full_key = str(getattr(error, "full_key", "") or "")
    if not full_key:
        return None
    *parents, name = full_key.split(".")
    node = _node_schema(schema, parents)
    if node is None:
        return None
    valid = [item.name for item in fields(node)]
    where = "".join(f"{parent}." for parent in parents)
    if isinstance(error, ConfigKeyError) and name not in valid:
        return unknown_key(name, valid, where)
    if isinstance(error, ValidationError) and name in valid:
        item = next(item for item in fields(node) if item.name == name)
        return f"{full_key} must be {_describe(_field_types(node)[name], item.metadata.get('allowed'))}, " \
               f"not {getattr(error, 'value', None)!r}"
    return None


def explain(error: BaseException, schema: type = StiltsConfig) -> str:
    """One line for an error raised while a config was composed (a wrong type, an unknown key, a
    config group option that does not exist): the key, what it must be, and the valid choices."""
    cause = error
    while cause.__cause__ is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__
    if isinstance(cause, OmegaConfBaseException):
        described = _described_error(cause, schema)
        if described:
            return described
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if "Available options" in str(error):
        header = next(index for index, line in enumerate(lines) if line.startswith("Available options"))
        options = takewhile(lambda line: not line.startswith("Config search path"), lines[header + 1:])
        return " ".join(lines[:header]) + f" {lines[header]} {', '.join(options)}"
    return re.sub(r"\s+", " ", " ".join(lines)) or type(error).__name__


def _typed_nodes(cfg: DictConfig, schema: type, prefix: str) -> Iterator[tuple[DictConfig, type, str]]:
    """`cfg` and each of its nodes that a dataclass of the schema types, with their key prefixes."""
    yield cfg, schema, prefix
    for name, kind in _field_types(schema).items():
        kind = _optional(kind)[0]
        if isinstance(kind, type) and is_dataclass(kind) and isinstance(cfg.get(name), DictConfig):
            yield from _typed_nodes(cfg[name], kind, f"{prefix}{name}.")


def schema_problems(cfg: DictConfig, schema: type) -> Iterator[str]:
    """A message for each key no field declares (Hydra's `+key=value` adds keys even to a typed node,
    so a typo such as `+intermediat=squad` would otherwise be silently ignored), then for each value
    that breaks its field's `allowed` rule."""
    nodes = list(_typed_nodes(cfg, schema, ""))
    for node, node_schema, prefix in nodes:
        valid = [item.name for item in fields(node_schema)]
        extra = sorted(set(node) - set(valid) - {"hydra"})
        if extra:
            yield unknown_key(extra[0], valid, prefix)
    for node, node_schema, prefix in nodes:
        types = _field_types(node_schema)
        for item in fields(node_schema):
            value, allowed = node.get(item.name), item.metadata.get("allowed")
            if allowed is not None and value is not None and not allowed.test(value):
                yield f"{prefix}{item.name} must be {_describe(types[item.name], allowed)}, not {value!r}"
