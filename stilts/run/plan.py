"""Planning a run: which stages it trains, in order, and each stage's key in the stage store.

A stage's key hashes everything that determines its weights: the stage it starts from (or the
pretrained model's content), task, tunables, trainer precision, the data's content, seed and
stilts' stage format; never where folders happen to be. Nothing here reads a model or trains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from stilts.data.datamodule import FEATURES_VERSION
from stilts.store.files import file_record, tree_records
from stilts.store.identity import STAGE_FORMAT, config_identity, digest, trainer_identity
from stilts.mixtures import expand_intermediate, is_mixture
from stilts.store.stages import EncoderSource, Stage, StageTask
from stilts.tasks import get_task
from stilts.tasks.common.sources import find_files, hub_parts, uses_hub
from stilts.tasks.spec import HubSource, TaskSpec

EVALUATION_ONLY = ("languages", "eval_split", "before")  # a target's settings that never change weights
# How a stage trains (train.peft and train.lora, a stage's own `peft`) enters its key as its resolved
# `Stage.peft` alone, and only when it trains an adapter: full stages keep the keys they always had.
PEFT_KEYS = ("peft", "lora")


def pretrained_identity(source: str) -> dict[str, Any]:
    """A local model folder by its content (moving or copying it changes nothing); a Hub model by id."""
    if Path(source).is_dir():
        return {"content": digest(tree_records(source))}
    return {"hub": source}


def data_identity(cfg: DictConfig, spec: TaskSpec, languages: Sequence[str]) -> dict[str, Any]:
    """What a stage trains and selects on: the content of its train and dev files in every
    language it trains on (not where the data root is), or its Hub datasets (repository, revision,
    config, split: another source or revision is another stage)."""
    identity: dict[str, list] = {}
    for split in ("train", "dev"):
        for language in languages:
            if uses_hub(spec, split, language, cfg.data.source, cfg.data.root):
                identity.setdefault("hub", []).extend(_hub_record(part, split, language)
                                                      for part in hub_parts(spec, split, language))
            else:
                root = Path(cfg.data.root).expanduser()
                identity.setdefault(split, []).extend(file_record(path)
                                                      for path in find_files(spec, split, language, root))
    return identity


def _hub_record(part: HubSource, split: str, language: str) -> list[Any]:
    """A Hub dataset by repository, revision, config and split; a local folder in the Hub layout (a
    declared task's source) by its content, as a data file is."""
    folder = Path(part.path).expanduser()
    where = {"content": digest(tree_records(folder))} if folder.is_dir() else part.path
    return [where, part.revision, part.name(language), part.splits[split]]


def _stage_task(name: str, settings: Mapping[str, Any], role: str) -> StageTask:
    spec = get_task(name)
    languages = settings.get("languages") if role == "intermediate" else None
    return StageTask(spec, settings, tuple(languages or [spec.train_language]))


def _tunables(task: StageTask, role: str) -> dict[str, Any]:
    """Settings that change weights: a target's languages are evaluation languages, an
    intermediate task's are training languages."""
    skip = EVALUATION_ONLY if role != "intermediate" else tuple(k for k in EVALUATION_ONLY if k != "languages")
    return {k: v for k, v in task.settings.items() if k not in (*skip, "peft")}


@dataclass(frozen=True)
class PlannedStage:
    """A stage before its key: its label, role, tasks (one, or a mixture's) and mixture settings."""

    label: str
    role: str
    tasks: dict[str, StageTask]
    mixture: dict[str, Any] | None
    peft: str | None = None  # the stage's own `peft` setting (null: train.peft)


def stage_tasks(cfg: DictConfig, intermediate_only: bool = False) -> list[PlannedStage]:
    """Intermediate stages in the order given (single tasks or mixtures), the target's own `before`
    stages (part of its recipe, e.g. XTREME-R trains XCOPA on SIQA then COPA), then the target
    stage (retrieval targets have none); `intermediate_only` gives the intermediate stages alone.
    What each stage trains on, without reading any data (`stilts.prepare` checks that data)."""
    intermediate = expand_intermediate(cfg.get("intermediate") or {})  # idempotent
    stages_in_order = [(name, settings, "intermediate") for name, settings in intermediate.items()]
    if not intermediate_only:
        stages_in_order += [(name, settings, "target-recipe")
                            for name, settings in (cfg.target.get("before") or {}).items()]
        if get_task(cfg.target.name).retrieve is None:
            stages_in_order.append((cfg.target.name, cfg.target, "target"))
    planned = []
    for label, settings, role in stages_in_order:
        resolved = OmegaConf.to_container(settings, resolve=True) if OmegaConf.is_config(settings) else dict(settings)
        if is_mixture(resolved):
            tasks = {name: _stage_task(name, member, role) for name, member in resolved["tasks"].items()}
            mixture = {k: v for k, v in resolved.items() if k not in ("tasks", "peft")}
            planned.append(PlannedStage(label, role, tasks, mixture, resolved.get("peft")))
        else:
            planned.append(PlannedStage(label, role, {label: _stage_task(label, resolved, role)}, None,
                                        resolved.get("peft")))
    return planned


def stage_peft(cfg: DictConfig, setting: str | None) -> dict[str, Any] | None:
    """The adapter a stage trains ({"method": "lora", "r": ..., ...}) from its own `peft` setting, else
    train.peft; None: it fine-tunes every weight."""
    method = setting or cfg.train.get("peft")
    if method is None or str(method) == "full":
        return None
    return {"method": str(method), **OmegaConf.to_container(cfg.train.lora, resolve=True)}


def plan_stages(cfg: DictConfig, pretrained: str | None = None, intermediate_only: bool = False) -> list[Stage]:
    """The stages of `stage_tasks` with their keys, which chain through the plan. `pretrained` is
    what the first stage loads (the resolved model source); intermediate stages' keys never depend
    on the target."""
    identity = config_identity(cfg)
    train = {k: v for k, v in identity["train"].items() if k not in PEFT_KEYS}
    shared = {"format": STAGE_FORMAT, "features": FEATURES_VERSION, "train": train,
              "trainer": trainer_identity(identity["trainer"]), "seed": cfg.seed, "source": cfg.data.source}
    source = pretrained or cfg.model.name_or_path
    parent: dict[str, Any] = {"pretrained": pretrained_identity(source)}
    starts_from = EncoderSource(source)
    planned = []
    for index, stage in enumerate(stage_tasks(cfg, intermediate_only), start=1):
        described = {name: {"settings": _tunables(task, stage.role),
                            "data": data_identity(cfg, task.spec, task.languages)}
                     for name, task in stage.tasks.items()}
        peft = stage_peft(cfg, stage.peft)
        adapter = {"peft": peft} if peft is not None else {}
        key = digest({**shared, "parent": parent, "stage": stage.label, "mixture": stage.mixture, "tasks": described,
                      **adapter})
        planned.append(Stage(index, stage.role, stage.label, stage.tasks, key,
                             Path(cfg.paths.stages_dir) / f"{stage.label}-{key}", stage.mixture, peft, starts_from))
        parent, starts_from = {"stage": key}, planned[-1].trained_encoder
    return planned
