"""Evaluation cost per example against training cost per example, on a 40-language PAN-X test.

Run by hand (not a test; read the ratios, this machine is shared):

    python benchmarks/evaluation_cost.py                      # tiny model, 25 sentences per language
    python benchmarks/evaluation_cost.py --model small --per-language 100

The data are real: ../shared/data/panx_af (WikiANN Afrikaans). Its test file stands in for English
training data (`--train` sentences) and its dev file is cut into 40 consecutive slices, one per
XTREME PAN-X language, written in XTREME's layout. The same StiltsModule then
- trains one epoch (micro-batch 8, no validation): seconds per training example;
- runs stilts' test over the 40 languages (`trainer.test`, scoring and logging included): seconds per
  test example;
- runs a bare forward loop over the same test batches: the floor evaluation cannot go under.
Every repetition runs the three in turn (interleaved), `--repeats` times; the table gives medians with
min-max. Goal: evaluation per example <= 0.5x training per example (a forward pass without backward).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import MODEL_SHAPES, quiet, spread, tiny_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "panx_af"


def _sentences(path: Path) -> list[str]:
    return [block for block in path.read_text().strip().split("\n\n") if block.strip()]


def write_data(root: Path, per_language: int, train: int) -> list[str]:
    from stilts.tasks.panx import LANGUAGES

    dev, test = _sentences(DATA / "dev-af.tsv"), _sentences(DATA / "test-af.tsv")
    if len(dev) < per_language * len(LANGUAGES) or len(test) < train:
        raise SystemExit(f"{DATA} has {len(dev)} dev / {len(test)} test sentences: lower --per-language or --train")
    folder = root / "panx"
    folder.mkdir(parents=True)
    (folder / "train-en.tsv").write_text("\n\n".join(test[:train]) + "\n")
    (folder / "dev-en.tsv").write_text("\n\n".join(dev[:per_language]) + "\n")
    for index, language in enumerate(LANGUAGES):
        chunk = dev[index * per_language:(index + 1) * per_language]
        (folder / f"test-{language}.tsv").write_text("\n\n".join(chunk) + "\n")
    return list(LANGUAGES)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODEL_SHAPES), default="tiny")
    parser.add_argument("--per-language", type=int, default=25)
    parser.add_argument("--train", type=int, default=1000, help="training sentences")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"the real PAN-X slice is not at {DATA}")
    quiet()
    import pytorch_lightning as pl
    import torch

    from stilts.data.datamodule import TaskDataModule
    from stilts.heads import FeaturizeSettings
    from stilts.model.encoder import load_encoder, load_tokenizer
    from stilts.heads import get_head
    from stilts.model.module import StiltsModule
    from stilts.tasks import get_task

    workdir = Path(tempfile.mkdtemp(prefix="stilts-evaluation-cost-"))
    languages = write_data(workdir / "data", args.per_language, args.train)
    model = tiny_model(args.model)
    tokenizer, spec = load_tokenizer(str(model)), get_task("panx")

    def datamodule(train: bool) -> TaskDataModule:
        data = TaskDataModule(spec, tokenizer, root=workdir / "data", cache_dir=workdir / "features",
                              settings=FeaturizeSettings(max_length=256), micro_batch_size=8, eval_batch_size=32,
                              train=train, eval_languages=() if train else languages)
        data.setup()
        return data

    def trainer(**kwargs) -> pl.Trainer:
        return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kwargs)

    train_data, test_data = datamodule(True), datamodule(False)
    encoder = load_encoder(str(model))
    module = StiltsModule(encoder, {"panx": get_head("tagging").module(encoder.config.hidden_size, len(train_data.labels))})
    train_count = len(train_data.train_set)
    test_count = sum(len(eval_set.features) for eval_set in test_data.test_sets)
    per_example: dict[str, list[float]] = {"train": [], "test": [], "forward": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        trainer(max_epochs=1, limit_val_batches=0).fit(module, datamodule=train_data)
        per_example["train"].append((time.perf_counter() - start) / train_count * 1000)
        start = time.perf_counter()
        trainer().test(module, datamodule=test_data, verbose=False)
        per_example["test"].append((time.perf_counter() - start) / test_count * 1000)
        loader = test_data.test_dataloader()
        start = time.perf_counter()
        module.eval()
        with torch.no_grad():
            for batch in loader:
                module(batch)
        per_example["forward"].append((time.perf_counter() - start) / test_count * 1000)
    ratio = statistics.median(per_example["test"]) / statistics.median(per_example["train"])
    print(f"model {args.model}; {train_count} training features; {len(languages)} languages x "
          f"{args.per_language} sentences = {test_count} test features")
    print(f"{'ms per example':>22} {'median (min-max)':>22}")
    for name, label in (("train", "training"), ("test", "stilts test"), ("forward", "bare forward loop")):
        print(f"{label:>22} {spread(per_example[name], 3):>22}")
    print(f"evaluation / training per example: {ratio:.2f}x (goal <= 0.5x); "
          f"stilts test / bare forward: {statistics.median(per_example['test']) / statistics.median(per_example['forward']):.2f}x")


if __name__ == "__main__":
    main()
