"""Wall time of the all9 mixture against the nine single-task stages run one after another.

Run by hand (not a test; timings on a shared machine are noisy, so read the ratio):

    python benchmarks/mixture_vs_sequential.py               # the quickstart (tiny model, shipped samples)
    python benchmarks/mixture_vs_sequential.py --repeats 5 --extra target.languages=[en]

Both variants train the same number of optimizer steps per task (the mixture's budget is the sum of
each task's epochs x steps per epoch, as in jiant), then fine-tune and evaluate XNLI. Each run
is the real CLI in a fresh output folder (nothing reused) with a shared, pre-warmed cache
(tiny model and featurized data), the variants interleaved, `--repeats` times; the table gives
the median seconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NINE = "squad,mnli,anli_plus,qqp,hellaswag,cosmosqa,commonsenseqa,socialiqa,ccg"
VARIANTS = {
    "all9 mixture -> xnli": ["+intermediate=all9"],
    "9 sequential stages -> xnli": [f"+intermediate=[{NINE}]"],
}


def _run(arguments: list[str], workdir: Path, cache: Path) -> float:
    environment = dict(os.environ, STILTS_CACHE=str(cache), HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "stilts.train", *arguments], cwd=workdir, env=environment,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"error: {' '.join(arguments)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for both variants")
    args = parser.parse_args()
    common = ["target=xnli", "experiment=quickstart", "trainer.enable_progress_bar=false", *args.extra]
    with tempfile.TemporaryDirectory(prefix="stilts-bench-") as scratch:
        cache = Path(scratch) / "cache"
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for trial in range(args.repeats + 1):  # trial 0 warms the cache and is not counted
            for name, variant in VARIANTS.items():
                workdir = Path(scratch) / f"{trial}-{len(times[name])}-{name[:4]}"
                workdir.mkdir()
                seconds = _run([*variant, *common], workdir, cache)
                if trial:
                    times[name].append(seconds)
                print(f"{'warm-up' if not trial else f'trial {trial}'}: {name}: {seconds:.1f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    width = max(map(len, VARIANTS))
    print(f"\n{'variant'.ljust(width)}  median s  runs")
    for name, median in medians.items():
        print(f"{name.ljust(width)}  {median:8.1f}  {', '.join(f'{t:.1f}' for t in times[name])}")
    mixture, sequential = medians.values()
    print(f"mixture / sequential: {mixture / sequential:.2f}")


if __name__ == "__main__":
    main()
