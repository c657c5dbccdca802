"""Training throughput of a stilts stage against Hugging Face `Trainer`: same model, same data, same precision.

Run by hand on a GPU machine (not a test; read the ratio):

    python benchmarks/gpu_throughput.py                                    # XLM-R large-sized, bf16
    python benchmarks/gpu_throughput.py --gradient-checkpointing --batch-size 64
    python benchmarks/gpu_throughput.py --size tiny --steps 4 --warmup 1   # CPU: a seconds-long check that it runs

The model is XLM-R large's architecture (`xlm-roberta-large`'s config: 24 layers, hidden 1024, 250,002
pieces) with random weights, so nothing is downloaded; `--size tiny` takes stilts' tiny XLM-R shape.
The data are the XNLI samples shipped with stilts, repeated to `--examples` pairs and featurized once
by stilts' XNLI featurizer (tiny tokenizer ids); both trainers read those same features.

- stilts: `StiltsModule` + `TaskDataModule` under a Lightning Trainer configured as `trainer=gpu`
  (bf16-mixed autocast, gradient clipping 1.0), length-grouped batches (stilts' default);
- Hugging Face: `XLMRobertaForSequenceClassification` under `transformers.Trainer` (`bf16=True`,
  length-grouped sampling, max_grad_norm 1.0, its default AdamW), `DataCollatorWithPadding`.

Both train `--warmup` + `--steps` optimizer steps of `--batch-size` features; throughput counts the real
(non-padding) tokens of the timed steps, from a forward hook on the encoder, divided by their wall time
(CUDA synchronised). Variants run interleaved, `--repeats` times; the table gives medians with min-max
and peak GPU memory. Needs `accelerate` (the `dev` extra), as `transformers.Trainer` does.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import quiet, spread, tiny_model

XLMR_LARGE = {"vocab_size": 250002, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
              "intermediate_size": 4096, "max_position_embeddings": 514, "type_vocab_size": 1,
              "layer_norm_eps": 1e-5}
LR, WARMUP_RATIO, WEIGHT_DECAY = 1e-5, 0.1, 0.01  # stilts' OptimSettings defaults, given to both


class TokenMeter:
    """Real tokens through the encoder (attention-mask sum, kept on the device: no sync per step)."""

    def __init__(self, encoder: Any) -> None:
        self.total = None
        encoder.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple, kwargs: dict) -> None:
        if module.training:
            tokens = kwargs["attention_mask"].sum()
            self.total = tokens if self.total is None else self.total + tokens

    def read(self) -> int:
        return 0 if self.total is None else int(self.total)


class Window:
    """Wall time and tokens from the start of step `warmup` to the end of training."""

    def __init__(self, meter: TokenMeter, cuda: bool) -> None:
        self.meter, self.cuda = meter, cuda
        self.start = self.tokens_before = None

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def begin(self) -> None:
        self._sync()
        self.tokens_before, self.start = self.meter.read(), time.perf_counter()

    def end(self) -> float:
        self._sync()
        return (self.meter.read() - self.tokens_before) / (time.perf_counter() - self.start)


def featurize(args: argparse.Namespace, workdir: Path, tokenizer: Any) -> Any:
    """stilts' XNLI features of the samples, repeated to --examples pairs."""
    from stilts.data.datamodule import TaskDataModule
    from stilts.heads import FeaturizeSettings
    from stilts.tasks import get_task
    from stilts.tasks.common.sources import SAMPLES_ROOT

    lines = (SAMPLES_ROOT / "xnli" / "train-en.tsv").read_text().splitlines()
    folder = workdir / "data" / "xnli"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train-en.tsv").write_text("\n".join(lines[i % len(lines)] for i in range(args.examples)) + "\n")
    (folder / "dev-en.tsv").write_text((SAMPLES_ROOT / "xnli" / "dev-en.tsv").read_text())
    data = TaskDataModule(get_task("xnli"), tokenizer, root=workdir / "data", cache_dir=workdir / "features",
                          settings=FeaturizeSettings(max_length=args.max_length), micro_batch_size=args.batch_size,
                          seed=0)
    data.setup()
    data.step_examples = args.batch_size
    return data


def run_stilts(args: argparse.Namespace, config: Any, data: Any, cuda: bool) -> tuple[float, float]:
    import pytorch_lightning as pl
    from transformers import XLMRobertaModel

    from stilts.heads import get_head
    from stilts.model.module import OptimSettings, StiltsModule

    encoder = XLMRobertaModel(config, add_pooling_layer=False)
    if args.gradient_checkpointing:  # as stilts' training does for model.gradient_checkpointing=true
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    module = StiltsModule(encoder, {"xnli": get_head("classification").module(config.hidden_size, len(data.labels))},
                          OptimSettings(lr=LR, weight_decay=WEIGHT_DECAY, warmup_ratio=WARMUP_RATIO))
    window = Window(TokenMeter(encoder), cuda)

    class Timer(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step == args.warmup and window.start is None:
                window.begin()

    trainer = pl.Trainer(accelerator="gpu" if cuda else "cpu", devices=1, precision=args.precision,
                         gradient_clip_val=1.0, max_steps=args.warmup + args.steps, limit_val_batches=0,
                         num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Timer()])
    trainer.fit(module, datamodule=data)
    return window.end(), _peak_memory(cuda)


def run_hugging_face(args: argparse.Namespace, config: Any, data: Any, tokenizer: Any, workdir: Path,
                     cuda: bool) -> tuple[float, float]:
    from transformers import (DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments,
                              XLMRobertaForSequenceClassification)
    from transformers.trainer_callback import PrinterCallback

    config = type(config).from_dict({**config.to_dict(), "num_labels": len(data.labels)})
    model = XLMRobertaForSequenceClassification(config)
    window = Window(TokenMeter(model.roberta), cuda)

    class Timer(TrainerCallback):
        def on_step_begin(self, training_args, state, control, **kwargs) -> None:
            if state.global_step == args.warmup and window.start is None:
                window.begin()

    features = data.train_set.select_columns(["input_ids", "attention_mask", "labels"])
    total = args.warmup + args.steps
    # transformers 5 names length grouping a sampling strategy; 4.x had a flag.
    fields = {field.name for field in dataclasses.fields(TrainingArguments)}
    grouping = ({"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in fields
                else {"group_by_length": True})
    training_args = TrainingArguments(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=args.batch_size, max_steps=total,
        learning_rate=LR, weight_decay=WEIGHT_DECAY, warmup_steps=int(WARMUP_RATIO * total), **grouping,
        max_grad_norm=1.0, bf16=args.precision.startswith("bf16"),
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if args.gradient_checkpointing else None,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True,
        dataloader_num_workers=0, use_cpu=not cuda, seed=0)
    trainer = Trainer(model=model, args=training_args, train_dataset=features,
                      data_collator=DataCollatorWithPadding(tokenizer), callbacks=[Timer()])
    trainer.remove_callback(PrinterCallback)  # its end-of-training dict would interleave with the table
    trainer.train()
    del trainer
    return window.end(), _peak_memory(cuda)


def _peak_memory(cuda: bool) -> float:
    """Peak GPU memory in GiB since the last reset (nan on CPU)."""
    if not cuda:
        return float("nan")
    import torch

    return torch.cuda.max_memory_allocated() / 2**30




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["large", "tiny"], default="large")
    parser.add_argument("--precision", default=None, help="default: bf16-mixed on a GPU, 32-true on CPU")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=5, help="untimed optimizer steps first")
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    quiet()
    import torch
    from transformers import XLMRobertaConfig

    from stilts.model.encoder import load_tokenizer

    cuda = torch.cuda.is_available()
    args.precision = args.precision or ("bf16-mixed" if cuda else "32-true")
    workdir = Path(tempfile.mkdtemp(prefix="stilts-gpu-throughput-"))
    tiny = tiny_model()
    tokenizer = load_tokenizer(str(tiny))
    config = XLMRobertaConfig(**XLMR_LARGE) if args.size == "large" else XLMRobertaConfig.from_pretrained(str(tiny))
    data = featurize(args, workdir, tokenizer)
    device = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"{args.size} model ({config.num_hidden_layers} layers, hidden {config.hidden_size}) on {device}, "
          f"{args.precision}, batch {args.batch_size}, {args.steps} timed steps after {args.warmup}"
          f"{', gradient checkpointing' if args.gradient_checkpointing else ''}", flush=True)
    results: dict[str, list[tuple[float, float]]] = {"stilts": [], "transformers.Trainer": []}
    for _ in range(args.repeats):
        for name in results:
            torch.manual_seed(0)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            if name == "stilts":
                results[name].append(run_stilts(args, config, data, cuda))
            else:
                results[name].append(run_hugging_face(args, config, data, tokenizer, workdir, cuda))
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
    print(f"{'trainer':>22} {'real tokens/s':>26} {'peak GiB':>18}")
    for name, runs in results.items():
        print(f"{name:>22} {spread([run[0] for run in runs], 0):>26} {spread([run[1] for run in runs], 1):>18}")
    ratio = (statistics.median(run[0] for run in results["stilts"])
             / statistics.median(run[0] for run in results["transformers.Trainer"]))
    print(f"stilts / transformers.Trainer throughput: {ratio:.2f}x")


if __name__ == "__main__":
    main()
