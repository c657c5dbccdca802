"""Intermediate stages as the config writes them -> every setting spelled out.

`intermediate` maps stage names to settings, in order. A stage is one task (`squad: {epochs: 2 ...}`)
or a mixture (a node with `tasks`): several tasks trained at once on one encoder, e.g.

    all9:        {tasks: all, sampler: proportional}
    commonsense: {tasks: all, domains: [commonsense]}
    mix:         {tasks: [squad, mnli], sampler: temperature, temperature: 2}

`tasks` is `all` (the paper's nine English intermediate tasks), a list of task names, or a mapping
of task names to settings that override the task's defaults; `domains` keeps the tasks of those
domains (each task's spec says its domain), so single- and multi-domain mixtures follow from data.
A task's defaults are its `conf/intermediate/<task>.yaml`, or, for a target task trained as an
intermediate task, the tunables of `conf/target/<task>.yaml`. Every task trains on `languages`
(default `[en]`; `all` = the task's languages). Expansion is idempotent: an expanded node expands
to itself, so run keys and stage keys see one canonical form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from stilts.errors import StiltsError
from stilts.heads import head_of
from stilts.settings import check_peft
from stilts.tasks import config_file, declare_task, get_task, read_config, task_names
from stilts.tasks.common.languages import checked_languages
from stilts.tasks.spec import DOMAINS

# Sources: jiant's multi-task samplers (jiant/shared/runner.py, jiant/utils/sampling); jiant's simple
# API mixes tasks in proportion to their size by default.
MIXTURE_DEFAULTS: dict[str, Any] = {
    "sampler": "proportional",
    "temperature": 1.0,  # sampler=temperature: p_t ~ min(N_t, examples_cap) ** (1 / temperature)
    "examples_cap": None,
    "weights": None,  # sampler=specified: {task: weight}
    "max_steps": None,  # null: the sum over tasks of epochs x steps per epoch (jiant)
    "rounds": None,  # dev evaluations (model-selection points); null: the largest member epochs
    "selection": None,  # {task: weight} of each task's dev score in model selection; null: equal
    "lr": None,  # one optimizer for the whole stage; null: train.lr
}
MIXTURE_KEYS = frozenset({"tasks", "domains", "peft", *MIXTURE_DEFAULTS})  # peft: null = train.peft
TARGET_ONLY = ("name", "languages", "eval_split", "before")  # target settings that are not tunables


def _conf_node(group: str, name: str) -> dict[str, Any] | None:
    path = config_file(group, name)
    return None if path is None else read_config(path)


def task_defaults(name: str) -> dict[str, Any]:
    """A task's settings as an intermediate task, before overrides."""
    spec = get_task(name)  # unknown names list the valid ones
    if spec.retrieve is not None or not ("train" in spec.files or any("train" in part.splits for part in spec.hub)):
        raise StiltsError(f"task {name!r} has no training data (it is scored on embeddings); it cannot be an "
                          "intermediate task")
    own = (_conf_node("intermediate", name) or {}).get(name)
    target = _conf_node("target", name) or {}
    defaults = {key: value for key, value in target.items() if key not in TARGET_ONLY}
    defaults.update(own or {})
    if spec.definition is not None:  # a declared task: its checked declaration travels with its settings
        defaults["task"] = dict(spec.definition)
    if not defaults:
        raise StiltsError(f"task {name!r} has no training settings (no conf/intermediate/{name}.yaml or "
                          f"conf/target/{name}.yaml); it cannot be an intermediate task")
    return defaults


def _languages(key: str, name: str, value: Any) -> list[str]:
    """An intermediate task's training languages: null is its training language, `all` every one."""
    spec = get_task(name)
    return checked_languages(f"{key}.languages", spec, value, [spec.train_language],
                             (*spec.all_languages, spec.train_language), allow_all=True)


def expand_task(key: str, name: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """One task's full settings: its defaults, then the given ones; languages made explicit."""
    if settings is not None and not isinstance(settings, Mapping):
        raise StiltsError(f"{key} must be the task's settings (a mapping), not {settings!r}")
    if settings and "task" in settings:  # as composed from intermediate/<name>.yaml: the same declaration
        settings = {**settings, "task": dict(declare_task(name, settings["task"], key).definition)}
    expanded = {**task_defaults(name), **dict(settings or {})}
    expanded["languages"] = _languages(key, name, expanded.get("languages"))
    return expanded


def _member_names(key: str, node: Mapping[str, Any]) -> list[str]:
    tasks, domains = node.get("tasks"), node.get("domains")
    if tasks in (None, "???"):
        raise StiltsError(f"{key}.tasks must be set: the tasks to mix, e.g. '{key}.tasks=[squad,mnli]' or {key}.tasks=all")
    if tasks == "all":
        names = [name for name in task_names() if get_task(name).xstilts_pool]
    elif isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks):
        names = list(dict.fromkeys(tasks))
    elif isinstance(tasks, Mapping) and tasks:
        names = list(tasks)
    else:
        raise StiltsError(f"{key}.tasks must be 'all', a list of task names (e.g. [squad,mnli]) or a mapping of "
                          f"task names to settings, not {tasks!r}")
    for name in names:
        get_task(name)
    if domains is not None:
        domains = [domains] if isinstance(domains, str) else domains
        unknown = [d for d in domains if d not in DOMAINS]
        if not isinstance(domains, list) or unknown or not domains:
            raise StiltsError(f"{key}.domains must be a list of domains from {', '.join(DOMAINS)}, not {node['domains']!r}")
        names = [name for name in names if get_task(name).domain in domains]
        if not names:
            raise StiltsError(f"{key}: no task of {key}.tasks has a domain in {domains}")
    for name in names:
        reason = head_of(get_task(name)).trains_alone_because
        if reason is not None:
            raise StiltsError(f"{key}: {name} cannot train inside a mixture ({reason}); train it as a stage of its own "
                              "(e.g. +intermediate=[squad_pairs,mnli]), not inside a mixture")
    return names


def _number(key: str, value: Any, *, positive: bool = True, whole: bool = False, optional: bool = True) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (not whole or isinstance(value, int))
    if not ok or (value <= 0 if positive else value < 0):
        kind = "whole number" if whole else "number"
        raise StiltsError(f"{key} must be a {'positive' if positive else 'non-negative'} {kind}"
                          f"{' or null' if optional else ''}, not {value!r}")


def _task_weights(key: str, value: Any, names: list[str], required: bool) -> dict[str, float] | None:
    if value is None:
        if required:
            raise StiltsError(f"{key} is needed: give a weight per task, e.g. {key}='{{{names[0]}: 2, ...}}'")
        return None
    if not isinstance(value, Mapping):
        raise StiltsError(f"{key} must map task names to weights, not {value!r}")
    unknown = [name for name in value if name not in names]
    if unknown:
        raise StiltsError(f"{key}: {unknown} are not tasks of this mixture ({', '.join(names)})")
    if required and (missing := [name for name in names if name not in value]):
        raise StiltsError(f"{key}: no weight for {missing}")
    for name, weight in value.items():
        _number(f"{key}.{name}", weight, positive=False, optional=False)
    if sum(float(weight) for weight in value.values()) <= 0 and (required or len(value) == len(names)):
        raise StiltsError(f"{key}: the weights sum to 0; give at least one positive weight")
    return {name: float(weight) for name, weight in value.items()}


def expand_mixture(key: str, node: Mapping[str, Any]) -> dict[str, Any]:
    """A mixture node with every member's settings and every mixture setting spelled out."""
    unknown = sorted(set(node) - MIXTURE_KEYS)
    if unknown:
        raise StiltsError(f"unknown mixture setting {key}.{unknown[0]}; valid: {', '.join(sorted(MIXTURE_KEYS))}")
    names = _member_names(key, node)
    given = node["tasks"] if isinstance(node["tasks"], Mapping) else {}
    expanded = {**MIXTURE_DEFAULTS, **{k: v for k, v in node.items() if k not in ("tasks", "domains")}}
    expanded["tasks"] = {name: expand_task(f"{key}.tasks.{name}", name, given.get(name)) for name in names}
    for setting, why in (("lr", "trains one optimizer"), ("peft", "trains one encoder")):
        members = [name for name, settings in expanded["tasks"].items() if settings.get(setting) is not None]
        if members:
            raise StiltsError(f"{key}.tasks.{members[0]}.{setting}: a mixture {why}; set {key}.{setting} instead")
    _number(f"{key}.lr", expanded["lr"])
    check_peft(key, expanded.get("peft"))
    from stilts.data.multitask import SAMPLERS  # torch: only for mixtures

    if expanded["sampler"] not in SAMPLERS:
        raise StiltsError(f"{key}.sampler must be one of {', '.join(SAMPLERS)}, not {expanded['sampler']!r}")
    _number(f"{key}.temperature", expanded["temperature"], optional=False)
    for setting in ("examples_cap", "max_steps", "rounds"):
        _number(f"{key}.{setting}", expanded[setting], whole=True)
    expanded["weights"] = _task_weights(f"{key}.weights", expanded["weights"], names,
                                        required=expanded["sampler"] == "specified")
    expanded["selection"] = _task_weights(f"{key}.selection", expanded["selection"], names, required=False)
    return expanded


def is_mixture(settings: Mapping[str, Any]) -> bool:
    return "tasks" in settings


def expand_intermediate(node: Any) -> dict[str, Any]:
    """Every intermediate stage spelled out (see the module docstring), in order."""
    plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node or {})
    expanded = {}
    for name, settings in plain.items():
        key = f"intermediate.{name}"
        if isinstance(settings, Mapping) and is_mixture(settings):
            expanded[name] = expand_mixture(key, settings)
        else:
            expanded[name] = expand_task(key, name, settings)
    return expanded


def expanded_config(cfg: DictConfig) -> DictConfig:
    """A copy of the config with its intermediate stages expanded."""
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    copy.intermediate = expand_intermediate(cfg.get("intermediate") or {})
    return copy


def intermediate_preset(name: str) -> dict[str, Any]:
    """What `+intermediate=NAME` selects, expanded: conf/intermediate/NAME.yaml (one task's settings
    or a mixture), else the task NAME with its defaults (a target task trained as an intermediate one)."""
    if name == "none":
        raise StiltsError("none is the no-intermediate baseline, not an intermediate setup")
    node = _conf_node("intermediate", name) or {name: {}}
    missing = sorted(OmegaConf.missing_keys(OmegaConf.create(node)))
    if missing:
        raise StiltsError(f"intermediate setup {name!r} leaves {missing[0]} to the command line (an ad-hoc "
                          "setup); rank presets or task names")
    return expand_intermediate(node)
