"""The task registry: every module in this package registers its TaskSpec(s) on import (its shared
readers and helpers live in the `common` subpackage, which is never taken for a task)."""

from __future__ import annotations

import importlib
import pkgutil

from stilts.errors import StiltsError
from stilts.tasks.spec import TaskSpec

_TASKS: dict[str, TaskSpec] = {}
# Not tasks: the spec every task module fills in, and `common/` (what tasks share).
NOT_TASKS = {"spec"}


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


def task_names() -> list[str]:
    _load_all()
    return sorted(_TASKS)


def get_task(name: str) -> TaskSpec:
    """The spec of a task by its config name; unknown names list the valid ones."""
    _load_all()
    if name not in _TASKS:
        raise StiltsError(f"unknown task {name!r}; valid tasks: {', '.join(task_names())}")
    return _TASKS[name]
