"""Every `python -m stilts.train` / `stilts.prepare` command of the README and docs/ is composed, job by
job, as Hydra would run it, made quickstart-sized (the tiny model, the shipped samples), and passes
the settings checks a run starts with: a command a reader copies never fails on a key or an option.
(The quickstart, the sweeps and the other CLIs' commands run end to end in their own tests.)"""

from __future__ import annotations

import re
import shlex

import pytest

from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode

import stilts.cli.resolvers  # noqa: F401  (registers the stilts.* resolvers the configs use)
from stilts.checks import check_config
from stilts.sweep import sweep_jobs
from tests.cli import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PLACEHOLDERS = {"DIR": "/tmp/stilts-docs-data", "<candidate>": "squad"}


def _commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = [re.sub(r"\\\n\s*", " ", block) for block in re.findall(r"```bash\n(.*?)```", text, re.S)]
        lines = [line for block in blocks for line in block.splitlines()] + re.findall(r"`(python -m stilts\.[^`]+)`", text)
        for line in lines:
            match = re.search(r"python -m stilts\.(train|prepare) (.*)", line)
            if match and "..." not in match.group(2):
                found.append((page.name, match.group(2).split(" # ")[0].strip()))
    return found


COMMANDS = _commands()


def _covering(jobs: list[list[str]]) -> list[list[str]]:
    """Few jobs of a sweep in which every value of every axis appears (a 297-job grid: about a dozen)."""
    chosen, seen = [], set()
    for job in jobs:
        if not set(job) <= seen:
            chosen.append(job)
            seen.update(job)
    return chosen


def _job_configs(overrides: list[str], multirun: bool) -> list:
    """The composed config of the jobs `stilts.train [-m] OVERRIDES` runs (`_covering` them), as Hydra's
    basic sweeper expands them: the preset's hydra.sweeper.params, then the command line."""
    GlobalHydra.instance().clear()
    with initialize_config_module("stilts.conf", version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        base = hydra.compose_config("config", overrides, run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN,
                                    with_log_configuration=False)
        if not multirun:
            return [base]
        return [hydra.compose_config("config", job, run_mode=RunMode.RUN, with_log_configuration=False)
                for job in _covering(sweep_jobs(overrides, base.hydra.sweeper.get("params")))]


def test_the_docs_hold_the_commands_a_reader_runs() -> None:
    pages = {page for page, _ in COMMANDS}
    assert {"README.md", "intermediate-data.md", "sweeps-and-slurm.md", "tasks-and-data.md"} <= pages
    assert len(COMMANDS) >= 25


@pytest.mark.parametrize("page,command", COMMANDS, ids=[f"{page}:{i}" for i, (page, _) in enumerate(COMMANDS)])
def test_every_docs_command_composes_and_passes_the_checks(page, command) -> None:
    arguments = [PLACEHOLDERS.get(word, word) for word in shlex.split(command)]
    for word, value in PLACEHOLDERS.items():
        arguments = [argument.replace(word, value) for argument in arguments]
    multirun = "-m" in arguments
    overrides = [argument for argument in arguments if argument != "-m"]
    overrides = [o for o in overrides if not o.startswith(("hydra/launcher=", "hydra.launcher."))]
    jobs = _job_configs([*overrides, "experiment=quickstart"] if "experiment=" not in command else overrides, multirun)
    assert jobs
    for job in jobs:
        check_config(job)
