"""Every `python -m stilts.train` / `stilts.prepare` command of the README and docs/ is composed, job by
job, as Hydra would run it, made quickstart-sized (the tiny model, the shipped samples), and passes
the settings checks a run starts with: a command a reader copies never fails on a key or an option
(the quickstart and the sweeps run end to end in their own tests). Every report, rank, score, store and
sweep command of the docs runs, as written, on the quickstart sweeps' outputs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest

from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode

import stilts.cli.resolvers  # noqa: F401  (registers the stilts.* resolvers the configs use)
from stilts.checks import check_config
from stilts.sweep import sweep_jobs
from stilts.tasks import get_task, task_names
from tests.cli import REPO
from tests.conftest import HANG_GUARD_SECONDS

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


# -- the other command lines: run, on the quickstart sweeps' outputs ---------------------------------------

OTHER_CLIS = r"python -m stilts\.(report|rank|score|store|sweep)\b"
# Names a reader replaces (a folder of their own, a list of choices) or files of their own: those
# commands are shown as forms; each CLI's own tests run them on real files (tests/test_score_cli.py).
# The XTREME score of one setting's runs (seed 42) runs as written on the quickstart's runs in
# tests/test_cli.py: the sweeps here hold several settings of a setup, which it rightly refuses to mix.
FORMS = ("DIR", "...", " | ", "<", "dev-v2.0.json", "test-context-", "test-de.tsv", "zh-en.test.gold", "/seed42-")


# Tasks whose data only the Hub serves (declared with a `task.source` alone) cannot be read offline: their
# train commands are composed and checked above; the commands that read their data are shown as forms.
HUB_ONLY = tuple(name for name in task_names() if get_task(name).hub and not get_task(name).files)


def _quickstart_sized(command: str) -> str:
    """A rank command at quickstart size: the tiny model and the sweeps' seed (their stages' keys)."""
    if command.startswith("python -m stilts.rank"):
        command += (" experiment=quickstart" if "experiment=" not in command else "") + " seed=1"
    return command


def _other_commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
        lines += re.findall(r"`(python -m stilts\.[^`]+)`", text)
        for line in lines:
            match = re.search(OTHER_CLIS + r" .*", line)  # a command, not a bare name in a sentence
            names = set(re.findall(r"\w+", match.group(0))) if match else set()
            if match and not any(form in match.group(0) for form in FORMS) and not names & set(HUB_ONLY):
                found.append((page.name, _quickstart_sized(match.group(0).split(" # ")[0].strip())))
    # One of each; rankings come before the report that reads them (stilts.rank < stilts.report).
    return sorted({command: page for page, command in found}.items())


OTHER_COMMANDS = _other_commands()


def test_the_docs_show_every_other_command_line() -> None:
    assert {command.split()[2] for command, _ in OTHER_COMMANDS} >= {"stilts.report", "stilts.rank", "stilts.store",
                                                                "stilts.sweep"}


@pytest.mark.slow
def test_every_other_docs_command_runs_on_the_quickstart_sweeps(quickstart_sweeps, stilts_cache, tmp_path) -> None:
    """Each report, rank, score, store and sweep command of the docs, run as written (in a folder whose
    `outputs/` holds the quickstart sweeps), ends well: exit 0, no traceback."""
    (tmp_path / "outputs").symlink_to(quickstart_sweeps)
    environment = dict(os.environ, STILTS_CACHE=str(stilts_cache), HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    for command, page in OTHER_COMMANDS:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=HANG_GUARD_SECONDS)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (page, command, done.stderr[-3000:])
