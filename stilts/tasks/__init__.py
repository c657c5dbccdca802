"""The task registry: every module in this package registers its TaskSpec(s) on import."""

from __future__ import annotations

import importlib
import pkgutil

from stilts.errors import StiltsError
from stilts.tasks.spec import TaskSpec

_TASKS: dict[str, TaskSpec] = {}
_INFRASTRUCTURE = {"spec", "formats", "scoring", "sources", "predictions", "retrieval_formats", "pair_ranking", "gold",
                   "hub_schema"}


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
        if module.name not in _INFRASTRUCTURE:
            importlib.import_module(f"{__name__}.{module.name}")
    _loaded = True


def task_names() -> list[str]:
    _load_all()
    return sorted(_TASKS)


def get_task(name: str) -> TaskSpec:
    """The spec of a task by its config name; unknown names list the valid ones."""
    _load_all()
    if name not in _TASKS:
        raise StiltsError(f"unknown task {name!r}; valid tasks: {', '.join(task_names())}")
    return _TASKS[name]
