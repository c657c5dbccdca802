"""The task registry: every module in this package registers its TaskSpec(s) on import (its shared
readers and helpers live in the `common` subpackage, which is never taken for a task), and every
`intermediate/<name>.yaml` with a `task:` node in a config folder (the package's conf/, then the
folders of Hydra's search path) declares a task without Python (stilts.tasks.common.declared)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from stilts.errors import StiltsError
from stilts.tasks.spec import TaskSpec

_TASKS: dict[str, TaskSpec] = {}
# Not tasks: the spec every task module fills in, and `common/` (what tasks share).
NOT_TASKS = {"spec"}
_config_folders: list[Path] = []  # config folders besides the package's (Hydra's search path)


def register(spec: TaskSpec) -> TaskSpec:
    if spec.name in _TASKS:
        raise ValueError(f"task {spec.name!r} is registered twice")
    _TASKS[spec.name] = spec
    return spec


_loaded = False


def _load_all() -> None:
    """Import every task module once; a module imported directly before is simply not re-run."""
    global _loaded
    if _loaded:
        return
    for module in pkgutil.iter_modules(__path__):
        if not module.ispkg and module.name not in NOT_TASKS:
            importlib.import_module(f"{__name__}.{module.name}")
    _loaded = True


# -- config folders and declared tasks ------------------------------------------------------------------

def use_search_path(entries: Iterable[str] | None) -> None:
    """Read declared tasks from the config folders of Hydra's search path too (`hydra.searchpath=
    [file://DIR]`: DIR/intermediate/<name>.yaml), as `+intermediate=<name>` composes them."""
    for entry in entries or ():
        entry = str(entry)
        if entry.startswith("file://"):
            folder = Path(entry[len("file://"):]).expanduser().resolve()
        elif entry.startswith("pkg://"):
            folder = Path(str(resources.files(entry[len("pkg://"):].replace("/", "."))))
        else:
            continue
        if folder not in _config_folders:
            _config_folders.append(folder)


def config_folders() -> list[Path]:
    return [Path(str(resources.files("stilts.conf"))), *_config_folders]


def config_file(group: str, name: str) -> Path | None:
    """`<group>/<name>.yaml` in the first config folder that has it (Hydra's order: the package first)."""
    return next((folder / group / f"{name}.yaml" for folder in config_folders()
                 if (folder / group / f"{name}.yaml").is_file()), None)


def read_config(path: Path) -> Any:
    """A config file as plain data (OmegaConf's YAML rules, e.g. 1e-5 is a number; nothing resolved)."""
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (yaml.YAMLError, OmegaConfBaseException) as error:
        raise StiltsError(f"{path}: not a valid config file ({str(error).splitlines()[0]})") from None


def _declaration(name: str) -> tuple[Any, Path] | None:
    """The `task:` node of intermediate/<name>.yaml, if that file declares a task."""
    path = config_file("intermediate", name)
    node = read_config(path) if path is not None else None
    stage = node.get(name) if isinstance(node, Mapping) else None
    return (stage["task"], path) if isinstance(stage, Mapping) and "task" in stage else None


def _registered(name: str) -> TaskSpec | None:
    """A task module's spec, or the one its config file declares (registered on first use)."""
    from stilts.tasks.common.declared import declared_spec

    _load_all()
    if name not in _TASKS and (found := _declaration(name)) is not None:
        register(declared_spec(name, found[0], str(found[1])))
    return _TASKS.get(name)


def declare_task(name: str, node: Any, where: str) -> TaskSpec:
    """The task a `task:` node declares (a composed config's copy of intermediate/<name>.yaml's); a
    declaration that differs from the file's (changed on the command line) or that reuses a built-in
    task's name is an error."""
    from stilts.tasks.common.declared import declared_spec

    spec = declared_spec(name, node, where)
    known = _registered(name)
    if known is None:
        return register(spec)
    if known.definition != spec.definition:
        origin = f"declared in {known.declared_in}" if known.declared_in else "a built-in task"
        raise StiltsError(f"{where}: task {name!r} is {origin}, and this declaration differs; a task is declared once: "
                          "edit that file, or declare this one under another name")
    return known


def task_names() -> list[str]:
    _load_all()
    declared = {path.stem for folder in config_folders() for path in (folder / "intermediate").glob("*.yaml")
                if path.stem not in _TASKS and _declaration(path.stem) is not None}
    return sorted({*_TASKS, *declared})


def get_task(name: str) -> TaskSpec:
    """The spec of a task by its config name; unknown names list the valid ones."""
    spec = _registered(name)
    if spec is None:
        raise StiltsError(f"unknown task {name!r}; valid tasks: {', '.join(task_names())}")
    return spec
