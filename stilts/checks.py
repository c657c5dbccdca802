"""Settings checked before any work starts: each bad value is named with its key and what to give
instead, and a key nobody reads (a typo such as `+intermediat=squad`) is an error, not a no-op."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from stilts.errors import StiltsError
from stilts.eval.transferability import ESTIMATES
from stilts.settings import RankConfig, StiltsConfig, check_peft, schema_problems
from stilts.mixtures import expand_intermediate, intermediate_preset, is_mixture
from stilts.store.stages import Stage
from stilts.tasks import get_task
from stilts.tasks.common.languages import target_languages
from stilts.tasks.common.sources import find_files, uses_hub
from stilts.tasks.spec import TaskSpec

STAGE_INTS = ("epochs", "effective_batch_size", "max_length", "doc_stride", "max_query_length")
REQUIRED_STAGE_INTS = ("epochs", "effective_batch_size")
RANK_KEYS = ("candidates", "method", "rank")  # conf/rank.yaml's own keys, beside the training config's


def check_schema(cfg: DictConfig, schema: type) -> None:
    """Raise a StiltsError for the first unknown key or value outside its field's allowed range."""
    for message in schema_problems(cfg, schema):
        raise StiltsError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(key: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_int(value) or value <= 0:
        raise StiltsError(f"{key} must be a positive whole number{' or null' if optional else ''}, not {value!r}")


def _stage_settings(cfg: DictConfig) -> dict[str, Any]:
    """Every stage's settings node by its config key."""
    nodes = {}
    for name, node in expand_intermediate(cfg.get("intermediate") or {}).items():
        members = node["tasks"] if is_mixture(node) else {name: node}
        prefix = f"intermediate.{name}.tasks." if is_mixture(node) else "intermediate."
        nodes.update({f"{prefix}{task}": OmegaConf.create(settings) for task, settings in members.items()})
    nodes.update({f"target.before.{name}": node for name, node in (cfg.target.get("before") or {}).items()})
    nodes["target"] = cfg.target
    return nodes


def check_stage(key: str, node: Any, trainable: bool = True) -> None:
    if not isinstance(node, DictConfig):
        raise StiltsError(f"{key} must be a task's settings (a mapping), not {node!r}")
    for name in STAGE_INTS:
        if name in node:
            _positive_int(f"{key}.{name}", node[name], optional=not (trainable and name in REQUIRED_STAGE_INTS))
    lr = node.get("lr")
    if lr is not None and (not _is_number(lr) or lr <= 0):
        raise StiltsError(f"{key}.lr must be a positive number or null, not {lr!r}")
    check_peft(key, node.get("peft"))


def check_config(cfg: DictConfig) -> None:
    """Raise a StiltsError naming the first bad setting of a composed job config."""
    check_schema(cfg, StiltsConfig)
    target = get_task(cfg.target.name)
    target_languages(cfg.target, target)
    for key, node in _stage_settings(cfg).items():
        check_stage(key, node, trainable=key != "target" or target.retrieve is None)
    split = cfg.target.get("eval_split")
    if target.files and split not in target.files:
        raise StiltsError(f"target.eval_split must be one of {sorted(target.files)} for {target.name}, not {split!r}")


def training_config(cfg: DictConfig) -> DictConfig:
    """A rank config without its own keys: the config `stilts.train` composes from the same overrides,
    so identities (stage keys, setting keys) computed from it are the training runs' own."""
    return OmegaConf.masked_copy(cfg, [key for key in cfg if key not in RANK_KEYS])


def check_rank_config(cfg: DictConfig) -> None:
    """Raise a StiltsError naming the first bad setting of a `python -m stilts.rank` config."""
    check_config(training_config(cfg))
    if cfg.get("intermediate"):
        raise StiltsError("stilts.rank ranks candidates=[...] (e.g. candidates=[squad,mnli]); drop +intermediate=...")
    target = get_task(cfg.target.name)
    if target.retrieve is not None or "train" not in target.files:
        raise StiltsError(f"target {target.name} has no labelled training data (it is scored on embeddings), so "
                          "there is nothing to estimate transfer on; rank for a trained target (e.g. target=xnli)")
    candidates = cfg.candidates
    if not isinstance(candidates, (ListConfig, list)) or not candidates or not all(
            isinstance(name, str) for name in candidates):
        raise StiltsError(f"candidates must be a non-empty list of intermediate setups, e.g. candidates=[squad,mnli], "
                          f"not {candidates!r}")
    repeated = sorted({name for name in candidates if list(candidates).count(name) > 1})
    if repeated:
        raise StiltsError(f"candidates lists {repeated[0]} twice; name each intermediate setup once")
    for name in candidates:
        try:
            intermediate_preset(name)
        except StiltsError as error:
            raise StiltsError(f"candidates: {error}") from None
    if cfg.method not in ESTIMATES:
        raise StiltsError(f"method must be one of {', '.join(ESTIMATES)}, not {cfg.method!r}")
    check_schema(cfg, RankConfig)


def check_writable(folder: str | Path, key: str) -> None:
    """Fail early, with the key to change, when results could not be written."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise StiltsError(f"cannot write to {folder} ({error.strerror or error}): choose a writable folder with "
                          f"{key}=DIR") from None


def check_no_evaluation_data(cfg: DictConfig, planned: Sequence[Stage], target: TaskSpec,
                             languages: Sequence[str]) -> None:
    """A task can be an intermediate task and the target (`+intermediate=pawsx target=pawsx`), but
    no intermediate stage may train or select models on a file the target is evaluated on."""
    intermediate = [stage for stage in planned if stage.role == "intermediate"]
    if cfg.data.source != "files" or cfg.target.eval_split not in target.files or not intermediate:
        return
    root = Path(cfg.data.root).expanduser()
    evaluated = set()
    for language in languages:
        with contextlib.suppress(StiltsError):  # missing evaluation files are reported when they are read
            evaluated.update(path.resolve() for path in find_files(target, cfg.target.eval_split, language, root))
    for stage in intermediate:
        for name, task in stage.tasks.items():
            used = {path.resolve() for split in ("train", "dev") for language in task.languages
                    if not uses_hub(task.spec, split, language, cfg.data.source, cfg.data.root)
                    for path in find_files(task.spec, split, language, root)}
            if used & evaluated:
                raise StiltsError(
                    f"intermediate task {name} would train or select models on {sorted(used & evaluated)[0]}, which "
                    f"target {target.name} is evaluated on ({cfg.target.eval_split} split); evaluate on another split "
                    f"(target.eval_split) or drop that language from intermediate languages")
