"""Startup: `python -m stilts.train --help`, `--cfg job` and a finished run that is skipped, each
against `python -c "import torch"` (what any PyTorch job pays anyway).

Run by hand (not a test):

    python benchmarks/startup.py                 # 5 repetitions, interleaved

The skipped run is a quickstart XNLI run (English only, one epoch) trained once in a temporary
folder first. Every command is a fresh process; the table shows median [min-max] wall seconds and
the ratio to `import torch`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

RUN = ["experiment=quickstart", "target=xnli", "target.languages=[en]", "train.max_epochs=1"]


def _wall(command: list[str], cwd: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    train = [sys.executable, "-m", "stilts.train"]
    variants = {
        "import torch": [sys.executable, "-c", "import torch"],
        "stilts.train --help": [*train, "--help"],
        "stilts.train --cfg job": [*train, *RUN, "--cfg", "job"],
        "skipped run": [*train, *RUN],
    }
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", STILTS_CACHE=os.path.join(folder, "cache"))
        subprocess.run([*train, *RUN], cwd=folder, env=env, check=True, capture_output=True)  # the run to skip
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, command in variants.items():
                times[name].append(_wall(command, folder, env))
    torch_time = statistics.median(times["import torch"])
    print(f"{'command':<24} {'median [min-max] s':>24} {'/ import torch':>15}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<24} {f'{median:.2f} [{min(values):.2f}-{max(values):.2f}]':>24} {median / torch_time:>14.2f}x")
    worst = max(statistics.median(values) for name, values in times.items() if name != "import torch")
    print(f"summary: --help, --cfg job and a skipped run take at most {worst / torch_time:.2f}x `import torch` "
          f"({torch_time:.2f} s; goal 1.3x)")


if __name__ == "__main__":
    main()
