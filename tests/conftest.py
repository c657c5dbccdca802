"""Shared fixtures: a session-wide tiny XLM-R, the real data slices, an isolated cache, the quickstart sweeps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from filelock import FileLock

from tests.cli import ONE_THREAD, PARALLEL_SWEEP, REPO, stilts

SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# Under pytest-xdist each worker gets its share of the cores (inherited by the runs it starts): torch's
# default of a thread per core in every worker makes them spin against each other.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))


# Under pytest-xdist (CI: `-n 2`, each module in one worker, modules in the order set here) the longest
# modules start first and the many short ones fill in at the end, so that the two workers end together:
# the quickstart sweeps' builder, SLURM (mostly waiting on the scheduler), then the longest end-to-end
# modules (the sweeps' readers well after their builder has started).
FIRST = ("test_docs_commands.py", "test_slurm.py", "test_sweeps.py", "test_all_tasks.py", "test_report_sweeps.py",
         "test_mixtures_cli.py", "test_benchmarks.py", "test_peft.py")


def _start_order(item: pytest.Item) -> int:
    name = item.path.name
    return FIRST.index(name) if name in FIRST else len(FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A slow test is an end-to-end run through the real CLI, so it is a `cli` test too: the unit
    tier (`-m "not slow and not cli"`) runs in-process only. The longest modules first (above)."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("cli"):
            item.add_marker(pytest.mark.cli)
    items.sort(key=_start_order)


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
BUILT = ".built"  # written once every sweep finished
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
    with the joblib launcher, one thread each (twice as fast as one job at a time on 2 cores). Under
    pytest-xdist the first worker that needs them runs them in the session's folder; the others wait."""
    session = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session = session.parent  # every worker's basetemp lies in the session's
    output = session / "quickstart-sweeps"
    with FileLock(f"{output}.lock"):
        if not (output / BUILT).exists():
            output.mkdir(exist_ok=True)
            for sweep in QUICKSTART_SWEEPS:
                done = stilts("-m", *sweep, f"paths.output_dir={output}", "trainer.enable_progress_bar=false",
                              *PARALLEL_SWEEP, cache=stilts_cache, cwd=output, env=ONE_THREAD,
                              timeout=HANG_GUARD_SECONDS)
                assert done.returncode == 0, (sweep, done.stderr[-3000:])
            (output / BUILT).touch()
    return output
