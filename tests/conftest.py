"""Shared fixtures: a session-wide tiny XLM-R, the real data slices, an isolated cache, the quickstart sweeps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli import ONE_THREAD, PARALLEL_SWEEP, REPO, stilts

SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


# Under pytest-xdist (`-n 2 --dist loadgroup`, as CI runs) the longest groups start first, one per worker:
# their wall time is mostly waiting (SLURM's time-limit passes, subprocesses), which the other worker fills.
LONG_GROUPS = ("test_slurm.py", "quickstart_sweeps")


def _xdist_group(item: pytest.Item) -> str | None:
    """The tests that share an expensive fixture run in one worker, which builds it once: the quickstart
    sweeps (session), a module's trained runs (module scope) and the one SLURM cluster."""
    if "quickstart_sweeps" in item.fixturenames:
        return "quickstart_sweeps"
    definitions = item._fixtureinfo.name2fixturedefs.values()
    if item.path.name == "test_slurm.py" or any(defs[-1].scope == "module" for defs in definitions):
        return item.path.name
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A slow test is an end-to-end run through the real CLI, so it is a `cli` test too: the unit
    tier (`-m "not slow and not cli"`) runs in-process only. Tests are grouped for pytest-xdist, the
    long groups first."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("cli"):
            item.add_marker(pytest.mark.cli)
        group = _xdist_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: _xdist_group(item) not in LONG_GROUPS)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data slices (../shared/data); tests skip when they are not beside the repo."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data slices not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def stilts_cache(tmp_path_factory) -> Path:
    """One cache for the whole session (tiny model, features), isolated from the user's."""
    return tmp_path_factory.mktemp("stilts-cache")


@pytest.fixture(scope="session")
def tiny_model_dir(stilts_cache) -> Path:
    from stilts.model.encoder import resolve_pretrained

    return Path(resolve_pretrained("tiny", stilts_cache))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from stilts.model.encoder import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


# Time limits on subprocesses only guard against a hang: a loaded machine runs the paper grid's 198
# quickstart runs 3 to 4 times slower than an idle one, which must never fail a test.
HANG_GUARD_SECONDS = 3 * 3600

# The smallest sweeps that give the report, the ranking and each question notebook their data, not the
# paper grid's 198 runs: its eleven setups on two targets (every candidate's gain for stilts.rank and the
# correlation) and three setups on all nine targets (an XTREME score); the question sweeps. One seed
# (training the intermediate stages is most of the time), but the order question's three (its paired test).
QUICKSTART_SWEEPS = (
    ("experiment=paper_grid_quickstart", "target=xnli,tydiqa", "seed=1"),
    ("experiment=paper_grid_quickstart", "+intermediate=none,squad,all9", "seed=1"),
    ("experiment=diversity_quickstart", "seed=1"),
    ("experiment=scale_quickstart", "seed=1"),
    ("experiment=order_quickstart",),
    ("experiment=retrieval_quickstart", "seed=1"),
)


@pytest.fixture(scope="session")
def quickstart_sweeps(tmp_path_factory, stilts_cache) -> Path:
    """One output folder holding the quickstart sweeps above, run once per session through the real CLI
    (their shared runs and stages are reused across sweeps, as in a lab's outputs/), two jobs at a time
    with the joblib launcher, one thread each (twice as fast as one job at a time on 2 cores)."""
    output = tmp_path_factory.mktemp("quickstart-sweeps")
    for sweep in QUICKSTART_SWEEPS:
        done = stilts("-m", *sweep, f"paths.output_dir={output}", "trainer.enable_progress_bar=false", *PARALLEL_SWEEP,
                      cache=stilts_cache, cwd=output, env=ONE_THREAD, timeout=HANG_GUARD_SECONDS)
        assert done.returncode == 0, (sweep, done.stderr[-3000:])
    return output
