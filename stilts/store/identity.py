"""What makes two runs (or two trained stages) the same: a config's identity, hashed.

Identity is the resolved config minus what only says *where* or *how fast* work happens (output
and cache folders, where the data root sits, loggers, device counts, micro-batch sizes, progress
bars). Two jobs with equal identity produce the same numbers, so they share a run folder and
stage folders; anything not listed here as infrastructure counts, so an unknown setting never
makes two different runs collide.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Bump when what a stage folder holds, or how features are built, changes meaning.
STAGE_FORMAT = 4  # 4: heads/<task>.safetensors, per-task facts in stage.json, mixtures

# Top-level keys that never change a number.
INFRASTRUCTURE_TOP = frozenset({"hydra", "paths", "logger", "overwrite", "keep_checkpoints", "keep_target_encoders"})
# Keys below a top-level key that never change a number.
INFRASTRUCTURE = {
    "data": frozenset({"root", "cache_dir", "num_workers"}),
    "train": frozenset({"eval_batch_size", "micro_batch_size", "checkpoint_every_n_steps"}),
    "trainer": frozenset({"_target_", "_partial_", "accelerator", "devices", "num_nodes", "strategy",
                          "enable_progress_bar", "log_every_n_steps", "enable_model_summary"}),
    "target": frozenset({"batch_size"}),
    "model": frozenset({"label", "gradient_checkpointing"}),
}


def digest(data: Any, length: int = 12) -> str:
    """A short, stable hash of JSON-able data."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:length]


def _resolved(node: Any, skip: frozenset[str]) -> Any:
    """Resolve a config node to plain data, never touching the skipped keys (they may be unset or
    point back at the folders being named)."""
    if not isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    return {key: OmegaConf.to_container(node[key], resolve=True) if OmegaConf.is_config(node[key]) else node[key]
            for key in node if key not in skip}


def _trains_lora(node: Any) -> bool:
    """Whether some stage of these (resolved) settings trains a LoRA adapter (`peft: lora`)."""
    if isinstance(node, Mapping):
        return node.get("peft") == "lora" or any(_trains_lora(value) for value in node.values())
    return isinstance(node, list) and any(_trains_lora(value) for value in node)


def config_identity(cfg: DictConfig) -> dict[str, Any]:
    """The settings that determine a run's numbers (see the module docstring). Fine-tuning every
    weight (train.peft null or full) ignores the adapter's settings: they count only when a stage
    trains an adapter, so runs without one keep the keys they had before adapters existed."""
    identity = {key: _resolved(cfg[key], INFRASTRUCTURE.get(key, frozenset()))
                for key in cfg if key not in INFRASTRUCTURE_TOP}
    train = identity.get("train")
    if isinstance(train, dict):
        if train.get("peft") in (None, "full"):
            train.pop("peft", None)
        if not _trains_lora({key: identity.get(key) for key in ("train", "intermediate", "target")}):
            train.pop("lora", None)
    return identity


def run_key(cfg: DictConfig) -> str:
    return digest({"format": STAGE_FORMAT, "config": config_identity(cfg)}, length=8)


def comparison_keys(cfg: DictConfig) -> dict[str, str]:
    """What a run must share with its no-intermediate baseline for a gain to mean something:
    `setting_key` hashes every number-changing setting but the intermediate setup, the seed and the
    target (so one key spans a sweep's targets); `target_key` hashes the target's own settings
    (task, languages, eval split, tunables)."""
    identity = config_identity(cfg)
    setting = {key: value for key, value in identity.items() if key not in ("intermediate", "seed", "target")}
    return {"setting_key": digest(setting, length=8), "target_key": digest(identity["target"], length=8)}


def trainer_identity(trainer: Mapping[str, Any]) -> dict[str, Any]:
    """Trainer settings that change weights (precision, clipping, ...), not devices or displays."""
    return {k: v for k, v in trainer.items() if k not in INFRASTRUCTURE["trainer"]}


def model_tag(name_or_path: str) -> str:
    """A readable folder name for a model: the last part of a Hub id or a local path."""
    tag = PurePath(str(name_or_path).rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tag)
