"""The one language check: a `languages` setting (a target's evaluation languages, an intermediate
task's training languages) read against the task's languages, one error naming the key otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

from stilts.errors import StiltsError
from stilts.tasks.spec import TaskSpec


def checked_languages(key: str, spec: TaskSpec, value: Any, default: Sequence[str], valid: Sequence[str],
                      allow_all: bool = False) -> list[str]:
    """`value` as a list of language codes (duplicates dropped, order kept): null means `default`;
    with `allow_all`, `all` means every language of the task and a single code means that one."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if value is None:
        return list(default)
    if allow_all and value == "all":
        return list(spec.languages)
    if allow_all and isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(code, str) for code in value):
        shown = f"{value!r}" if isinstance(value, str) else value
        raise StiltsError(f"{key} must be a list of language codes, e.g. {key}=[de,sw]"
                          f"{' (or all)' if allow_all else ''}, not {shown}")
    if not value:
        raise StiltsError(f"{key} is empty: give at least one language, or null for {', '.join(default)}"
                          if len(default) <= 3 else f"{key} is empty: give at least one language, or null for all of "
                          f"{spec.name}'s")
    unknown = [code for code in value if code not in valid]
    if unknown:
        raise StiltsError(f"{key}: {spec.name} has no language(s) {unknown}; valid: {', '.join(dict.fromkeys(valid))}")
    return list(dict.fromkeys(value))


def target_languages(target: Any, spec: TaskSpec) -> list[str]:
    """The languages a target is evaluated on: `target.languages`, or null for all of the task's."""
    return checked_languages("target.languages", spec, target.get("languages"), spec.languages, spec.all_languages)
