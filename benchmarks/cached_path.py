"""The cached path: featurizing a split whose features are cached vs featurizing it the first time, and
resolving the cached tiny model in a fresh process (what every sweep job and DDP rank does).

Run by hand (not a test):

    python benchmarks/cached_path.py

Featurization uses real data from ../shared/data (XNLI dev as classification, TyDiQA-GoldP train as
span QA, as read: repeating them would let pickle's memo flatter the cache key) and the tiny
model's tokenizer; each repetition
featurizes into a fresh cache folder, then again from that cache (interleaved). Resolving runs
`resolve_pretrained("tiny", ...)` in a fresh interpreter, timed inside it. Medians [min-max] of 3.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets

from stilts.data.datamodule import TaskDataModule
from stilts.heads import FeaturizeSettings
from stilts.model.encoder import load_tokenizer, resolve_pretrained
from stilts.tasks import get_task
from stilts.tasks.common.sources import read_file

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"xnli": ("xnli/dev-en.tsv", 256), "tydiqa": ("tydiqa_goldp/tydiqa.goldp.en.train.json", 384)}
RESOLVE = ("import time; from stilts.model.encoder import resolve_pretrained; t = time.perf_counter(); "
           "resolve_pretrained('tiny', {cache!r}); print(time.perf_counter() - t)")


def _spread(values: list[float], scale: float = 1.0, unit: str = "s") -> str:
    return f"{statistics.median(values) * scale:.3f} [{min(values) * scale:.3f}-{max(values) * scale:.3f}] {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing: this benchmark reads the real data slices there")
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as model_cache:
        tokenizer = load_tokenizer(resolve_pretrained("tiny", model_cache))
        resolve = [float(subprocess.run([sys.executable, "-c", RESOLVE.format(cache=model_cache)], check=True,
                                        capture_output=True, text=True).stdout.split()[-1]) for _ in range(args.repeats)]
    print(f"{'what':<36} {'first':>26} {'cached':>26} {'cached/first':>13}")
    worst = 0.0
    for task, (path, max_length) in SETS.items():
        spec = get_task(task)
        examples = read_file(spec, DATA / path)
        first, cached = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as cache:
                module = TaskDataModule(spec, tokenizer, root=DATA, cache_dir=cache,
                                        settings=FeaturizeSettings(max_length=max_length))
                for times in (first, cached):
                    start = time.perf_counter()
                    module._featurize(examples, "train", "en")
                    times.append(time.perf_counter() - start)
        ratio = statistics.median(cached) / statistics.median(first)
        worst = max(worst, ratio)
        print(f"{f'featurize {task} ({len(examples)} examples)':<36} {_spread(first):>26} {_spread(cached):>26} "
              f"{100 * ratio:>12.1f}%")
    print(f"{'resolve the cached tiny model':<36} {'':>26} {_spread(resolve, 1000, 'ms'):>26}")
    print(f"summary: cached featurization costs at most {100 * worst:.1f}% of the first (goal 3%); resolving the "
          f"cached tiny model takes {1000 * statistics.median(resolve):.0f} ms (goal 50 ms)")


if __name__ == "__main__":
    main()
