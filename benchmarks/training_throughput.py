"""Training throughput: a stilts stage's epoch against a plain PyTorch loop and fixed-length padding.

Run by hand (not a test; read the ratios, this machine is shared):

    python benchmarks/training_throughput.py                       # small XLM-R shape, 1000 XNLI pairs
    python benchmarks/training_throughput.py --model tiny --examples 2490

The data are real: ../shared/data/xnli/dev-en.tsv (XNLI English dev) stands in for training data,
featurized once by stilts' XNLI featurizer (max length 256, the tiny tokenizer). The same model shape
(random weights, a fresh copy per run) trains one epoch at micro-batch `--batch-size` under:
- stilts: `StiltsModule` + `TaskDataModule` under Lightning, length-grouped batches (the default);
- stilts, shuffled: the same with `group_by_length=False` (plain shuffling, dynamic padding);
- plain loop: a hand-written PyTorch loop (shuffled, dynamic padding, AdamW, clipping 1.0);
- fixed padding: the plain loop with every feature padded to the max length (256).
Every repetition runs the four in turn, `--repeats` times; the table gives medians with min-max and
each variant's time relative to the plain loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import MODEL_SHAPES, quiet, spread, tiny_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xnli" / "dev-en.tsv"
MAX_LENGTH = 256  # XNLI's max_length in conf/target/xnli.yaml


def plain_epoch(model: Any, head: Any, features: Any, collate: Any, batch_size: int, seed: int) -> None:
    """One epoch of the loop a researcher would write by hand."""
    import torch
    from torch.utils.data import DataLoader

    parameters = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    loader = DataLoader(features, batch_size=batch_size, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(seed))
    model.train()
    for batch in loader:
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        loss = head(hidden, batch).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()


def fixed_padding(pad_token_id: int, inner: Any) -> Any:
    """A collator padding every feature to MAX_LENGTH (what a fixed-shape pipeline does)."""
    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        padded = [dict(feature, input_ids=feature["input_ids"] + [pad_token_id] * (MAX_LENGTH - len(feature["input_ids"])),
                       attention_mask=feature["attention_mask"] + [0] * (MAX_LENGTH - len(feature["attention_mask"])))
                  for feature in features]
        return inner(padded)
    return collate




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODEL_SHAPES), default="small")
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"the real XNLI slice is not at {DATA}")
    quiet()
    import pytorch_lightning as pl
    import torch

    from stilts.data.collate import DynamicPaddingCollator
    from stilts.data.datamodule import TaskDataModule
    from stilts.heads import FeaturizeSettings
    from stilts.model.encoder import load_encoder, load_tokenizer
    from stilts.heads import get_head
    from stilts.model.module import StiltsModule
    from stilts.tasks import get_task

    workdir = Path(tempfile.mkdtemp(prefix="stilts-training-throughput-"))
    (workdir / "data" / "xnli").mkdir(parents=True)
    lines = DATA.read_text().splitlines()[:args.examples]
    (workdir / "data" / "xnli" / "train-en.tsv").write_text("\n".join(lines) + "\n")
    (workdir / "data" / "xnli" / "dev-en.tsv").write_text("\n".join(lines[:10]) + "\n")
    model_dir = tiny_model(args.model)
    tokenizer, spec = load_tokenizer(model_dir), get_task("xnli")

    def datamodule(grouped: bool) -> TaskDataModule:
        data = TaskDataModule(spec, tokenizer, root=workdir / "data", cache_dir=workdir / "features",
                              settings=FeaturizeSettings(max_length=MAX_LENGTH), micro_batch_size=args.batch_size,
                              seed=0, group_by_length=grouped)
        data.setup()
        data.step_examples = args.batch_size
        return data

    data = {True: datamodule(True), False: datamodule(False)}
    features = data[True].train_set.select_columns(["input_ids", "attention_mask", "labels"])
    collate = DynamicPaddingCollator(tokenizer.pad_token_id)

    def fresh() -> tuple[Any, Any]:
        torch.manual_seed(0)
        encoder = load_encoder(model_dir)
        return encoder, get_head("classification").module(encoder.config.hidden_size, len(spec.labels))

    def stilts_epoch(grouped: bool) -> None:
        encoder, head = fresh()
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, gradient_clip_val=1.0, limit_val_batches=0,
                             num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(StiltsModule(encoder, {"xnli": head}), datamodule=data[grouped])

    variants = {
        "stilts (length-grouped)": lambda: stilts_epoch(True),
        "stilts (shuffled)": lambda: stilts_epoch(False),
        "plain loop": lambda: plain_epoch(*fresh(), features, collate, args.batch_size, 0),
        "fixed padding": lambda: plain_epoch(*fresh(), features, fixed_padding(tokenizer.pad_token_id, collate),
                                             args.batch_size, 0),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    plain = statistics.median(seconds["plain loop"])
    print(f"model {args.model}; {len(features)} XNLI training features; micro-batch {args.batch_size}; one epoch")
    print(f"{'variant':>24} {'epoch s':>20} {'examples/s':>11} {'vs plain loop':>14}")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:>24} {spread(values):>20} {len(features) / median:>11.0f} {median / plain:>13.2f}x")
    print(f"stilts (default) / plain loop: {statistics.median(seconds['stilts (length-grouped)']) / plain:.2f}x; "
          f"fixed padding / plain loop: {statistics.median(seconds['fixed padding']) / plain:.2f}x")


if __name__ == "__main__":
    main()
