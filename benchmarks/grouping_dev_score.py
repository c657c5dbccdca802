"""Length-grouped batches change the order of training examples, not the model: the quickstart's dev
scores with `train.group_by_length=true` (the default) and `false`, over seeds.

Run by hand (not a test; minutes on 2 CPU cores):

    python benchmarks/grouping_dev_score.py                       # 8 seeds of the README quickstart
    python benchmarks/grouping_dev_score.py --seeds 1 2 3 --target xnli --intermediate none

Each seed runs the quickstart (`+intermediate=squad target=tydiqa experiment=quickstart`, English only)
once grouped and once shuffled, interleaved, through the real CLI into a scratch folder, and reads
every stage's dev score (its model-selection score) from results.json. For each stage the table gives
both means (standard deviation), the mean paired difference (grouped - shuffled) with its 95% t
interval (`scipy.stats.ttest_rel`), and the Wilcoxon signed-rank p-value (`scipy.stats.wilcoxon`):
"unchanged in expectation" means an interval that holds 0. The tiny model's scores are noisy, so
the interval is wide; it is the protocol that carries over to a real model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scipy import stats


def run(seed: int, grouped: bool, args: argparse.Namespace, output: Path) -> dict[str, float]:
    """Every stage's dev score of one quickstart run."""
    intermediate = [] if args.intermediate == "none" else [f"+intermediate={args.intermediate}"]
    command = [sys.executable, "-m", "stilts.train", *intermediate, f"target={args.target}", "experiment=quickstart",
               f"target.languages=[{args.language}]", f"seed={seed}", f"train.group_by_length={str(grouped).lower()}",
               f"paths.output_dir={output}", "trainer.enable_progress_bar=false"]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    (results,) = [path for path in (output / "runs").rglob("results.json")
                  if json.loads(path.read_text())["seed"] == seed
                  and json.loads(path.read_text())["config"]["train"]["group_by_length"] == grouped]
    stages = json.loads(results.read_text())["stages"]
    return {name: float(facts["dev_score"]) for name, facts in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--target", default="tydiqa")
    parser.add_argument("--intermediate", default="squad", help="an intermediate config, or none")
    parser.add_argument("--language", default="en")
    args = parser.parse_args()
    output = Path(tempfile.mkdtemp(prefix="stilts-grouping-"))
    scores: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for seed in args.seeds:
        for grouped in (True, False):
            scores[grouped].append(run(seed, grouped, args, output))
            print(f"seed {seed} {'grouped ' if grouped else 'shuffled'}: "
                  + ", ".join(f"{name} {value:.2f}" for name, value in scores[grouped][-1].items()), flush=True)
    print(f"\n{'stage':>12} {'grouped':>14} {'shuffled':>14} {'difference [95% CI]':>28} {'Wilcoxon p':>11}")
    holds_zero = True
    for stage in scores[True][0]:
        grouped = [run_scores[stage] for run_scores in scores[True]]
        shuffled = [run_scores[stage] for run_scores in scores[False]]
        differences = [a - b for a, b in zip(grouped, shuffled)]
        if any(differences):
            interval = stats.ttest_rel(grouped, shuffled).confidence_interval(0.95)
            low, high = interval.low, interval.high
            p_value = stats.wilcoxon(grouped, shuffled).pvalue
        else:
            low = high = 0.0
            p_value = 1.0
        holds_zero &= low <= 0 <= high
        print(f"{stage:>12} {statistics.mean(grouped):>7.2f} ({statistics.stdev(grouped):>4.2f}) "
              f"{statistics.mean(shuffled):>7.2f} ({statistics.stdev(shuffled):>4.2f}) "
              f"{statistics.mean(differences):>+9.2f} [{low:+.2f}, {high:+.2f}] {p_value:>11.2f}")
    print(f"{len(args.seeds)} seeds: the 95% interval of the paired difference holds 0 for "
          f"{'every stage' if holds_zero else 'NOT every stage'}")


if __name__ == "__main__":
    main()
