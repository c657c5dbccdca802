"""Training batches: the fraction of real (non-padding) tokens with fixed padding, plain shuffling with
dynamic padding, and stilts' length-grouped order, on real data.

Run by hand (not a test):

    python benchmarks/training_batches.py                 # XNLI, PAWS-X, UD POS, TyDiQA from ../shared/data

XTREME dev sets stand in for training data (XNLI, PAWS-X, UD POS: English dev; TyDiQA-GoldP: the
English train slice), featurized by stilts' own featurizers with each target's max length. Lengths
come from a 32k-piece Unigram tokenizer trained on ../shared/data (XLM-R's tokenizer cannot be
downloaded here; a 4k-piece one would make sequences longer than XLM-R's). Orders are a function of
the seed, so each variant is computed once per seed over 3 seeds; the table shows the median
[min-max] real-token fraction per micro-batch size, with an optimizer step of 32 features.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from stilts.heads import FeaturizeSettings, head_of
from stilts.data.sampling import LengthGroupedSampler, ResumableSampler
from stilts.model.encoder import load_tokenizer
from stilts.model.tiny import TinySettings, build_tiny_xlmr
from stilts.tasks import get_task
from stilts.tasks.common.sources import read_file

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {  # task: (file, max length as in the task's YAML)
    "xnli": ("xnli/dev-en.tsv", 256),
    "pawsx": ("pawsx/dev-en.tsv", 256),
    "udpos": ("udpos_xtreme_format/dev-en.tsv", 256),
    "tydiqa": ("tydiqa_goldp/tydiqa.goldp.en.train.json", 384),
}


def lengths_of(task: str, tokenizer) -> list[int]:
    spec = get_task(task)
    path, max_length = SETS[task]
    examples = read_file(spec, DATA / path)
    labels = {label: i for i, label in enumerate(spec.labels)}
    batch = {key: [example.get(key) for example in examples] for key in examples[0]}
    batch["example_index"] = list(range(len(examples)))
    features = head_of(spec).featurize(batch, tokenizer, FeaturizeSettings(max_length=max_length), labels)
    return [len(ids) for ids in features["input_ids"]]


def real_fraction(order: list[int], lengths: list[int], micro: int) -> float:
    batches = [order[i:i + micro] for i in range(0, len(order), micro)]
    return sum(lengths[i] for b in batches for i in b) / sum(len(b) * max(lengths[i] for i in b) for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--step", type=int, default=32, help="features per optimizer step")
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/stilts/benchmarks").expanduser())
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing: this benchmark reads the real data slices there")
    tokenizer = load_tokenizer(str(build_tiny_xlmr(DATA, args.cache, TinySettings(vocab_size=32000))))
    print(f"real-token fraction, median [min-max] over seeds 1-3; optimizer step {args.step} features")
    print(f"{'task':<8} {'features':>8} {'micro':>5} {'fixed':>7} {'shuffled':>22} {'grouped':>22}")
    worst = {micro: 1.0 for micro in args.micro}
    for task, (_, max_length) in SETS.items():
        lengths = lengths_of(task, tokenizer)
        for micro in args.micro:
            fixed = sum(lengths) / (len(lengths) * max_length)
            shuffled, grouped = [], []
            for seed in (1, 2, 3):
                plain = ResumableSampler(range(len(lengths)), seed=seed)
                shuffled.append(real_fraction(list(plain), lengths, micro))
                sampler = LengthGroupedSampler(range(len(lengths)), lengths=lengths, step_examples=max(args.step, micro),
                                               seed=seed)
                grouped.append(real_fraction(list(sampler), lengths, micro))
            worst[micro] = min(worst[micro], min(grouped))
            cells = [f"{statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]" for v in (shuffled, grouped)]
            print(f"{task:<8} {len(lengths):>8} {micro:>5} {fixed:>7.3f} {cells[0]:>22} {cells[1]:>22}")
    print("summary: length-grouped batches carry at least " +
          ", ".join(f"{worst[m]:.3f} real tokens at micro-batch {m}" for m in args.micro) +
          f" on {', '.join(SETS)} (goal: 0.95 at 8, 0.93 at 32)")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
