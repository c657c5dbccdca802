"""Full fine-tuning against a LoRA adapter (`train.peft=lora`) on the same small XLM-R shape.

Run by hand (not a test; read the ratios, this machine is shared):

    python benchmarks/peft_stage.py                          # small shape (256 wide, 4 layers), 3 repetitions
    python benchmarks/peft_stage.py --shape tiny --repeats 5

Per variant (full: every weight trains; lora: conf/config.yaml's train.lora settings):
- trainable and all parameters of the encoder and a classification head;
- step time: a fresh child process trains `--steps` optimizer steps (AdamW, micro-batch `--batch-size`,
  `--length` random token ids) after 3 warm-up steps; the variants take turns, `--repeats` times,
  medians (min-max);
- peak memory of that child: its max RSS on CPU, torch's peak allocated bytes on CUDA;
- exported bytes and dev scores: the real pipeline (`+intermediate=squad target=xnli
  target.languages=[en] experiment=quickstart`, the same shape) once per variant: the SQuAD stage
  folder's bytes, its dev score, the English XNLI score. Both variants use the quickstart's lr;
  LoRA usually wants a larger one (Hu et al. 2021 tune RoBERTa-base's adapters at 4e-4 to 5e-4),
  so read the scores as plumbing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import MODEL_SHAPES, quiet, spread, tiny_model

VARIANTS = ("full", "lora")
WARM_UP_STEPS = 3


def lora_settings() -> dict:
    """The adapter stilts trains by default (conf/config.yaml's train.lora)."""
    from importlib import resources

    from omegaconf import OmegaConf

    settings = OmegaConf.load(resources.files("stilts.conf") / "config.yaml").train.lora
    return {"method": "lora", **OmegaConf.to_container(settings)}


def train_steps(variant: str, shape: str, steps: int, batch_size: int, length: int) -> dict:
    """One child's measurement: parameter counts, seconds per optimizer step, peak memory."""
    import resource

    import torch

    from stilts.heads.networks import ClassificationHead
    from stilts.model.adapters import add_adapter, trainable_parameters
    from stilts.model.encoder import load_encoder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    encoder = load_encoder(tiny_model(shape))
    if variant == "lora":
        encoder = add_adapter(encoder, lora_settings())
    head = ClassificationHead(encoder.config.hidden_size, 3)
    encoder.to(device).train()
    head.to(device).train()
    trainable = [p for module in (encoder, head) for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    ids = torch.randint(5, encoder.config.vocab_size, (batch_size, length), device=device)
    batch = {"labels": torch.randint(0, 3, (batch_size,), device=device)}
    mask = torch.ones_like(ids)

    def step() -> None:
        loss = head(encoder(input_ids=ids, attention_mask=mask).last_hidden_state, batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(WARM_UP_STEPS):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / steps
    counts = [trainable_parameters(module) for module in (encoder, head)]
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: KiB
    return {"trainable": sum(t for t, _ in counts), "parameters": sum(a for _, a in counts), "seconds": seconds,
            "peak_bytes": peak, "device": device}


def measure_in_child(variant: str, args: argparse.Namespace) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", variant, "--shape", args.shape, "--steps",
                           str(args.steps), "--batch-size", str(args.batch_size), "--length", str(args.length)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def pipeline(variant: str, shape: str, folder: Path) -> dict:
    """The quickstart's SQuAD then XNLI with this variant: the SQuAD stage's bytes and dev score, English XNLI's score."""
    from stilts.store import stages

    tiny = [f"model.tiny.{key}={value}" for key, value in MODEL_SHAPES[shape].items()]
    subprocess.run([sys.executable, "-m", "stilts.train", "+intermediate=squad", "target=xnli", "target.languages=[en]",
                    "experiment=quickstart",
                    f"train.peft={variant}", "trainer.enable_progress_bar=false", *tiny], cwd=folder, check=True,
                   capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    [squad] = (folder / "outputs" / "stages").glob("squad-*")
    [results] = (folder / "outputs" / "runs").rglob("results.json")
    summary = json.loads((squad / "stage.json").read_text())
    return {"stage_bytes": stages.stored_bytes(squad), "squad_dev": summary["dev_score"],
            "xnli": json.loads(results.read_text())["score"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(MODEL_SHAPES), default="small")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet()
    if args.child:
        print(json.dumps(train_steps(args.child, args.shape, args.steps, args.batch_size, args.length)))
        return
    from tabulate import tabulate

    tiny_model(args.shape)  # built once, before the children share it
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for repeat in range(args.repeats):
        for variant in VARIANTS:
            runs[variant].append(measure_in_child(variant, args))
            print(f"repeat {repeat + 1}/{args.repeats} {variant}: {runs[variant][-1]['seconds'] * 1000:.1f} ms a step",
                  flush=True)
    scores = {}
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory() as folder:
            scores[variant] = pipeline(variant, args.shape, Path(folder))
    rows, medians = [], {}
    for variant in VARIANTS:
        first = runs[variant][0]
        medians[variant] = {key: statistics.median(run[key] for run in runs[variant])
                            for key in ("seconds", "peak_bytes")}
        rows.append([variant, f"{first['trainable']:,}", f"{first['parameters']:,}",
                     spread([run["seconds"] * 1000 for run in runs[variant]], 1),
                     spread([run["peak_bytes"] / 2**20 for run in runs[variant]], 0),
                     f"{scores[variant]['stage_bytes'] / 2**20:.3f}", f"{scores[variant]['squad_dev']:.2f}",
                     f"{scores[variant]['xnli']:.2f}"])
    device = runs["full"][0]["device"]
    print(f"\nshape {args.shape} ({MODEL_SHAPES[args.shape] or 'the quickstart tiny model'}), {device}, micro-batch "
          f"{args.batch_size} x {args.length} tokens, {args.steps} steps a measurement, {args.repeats} repetitions")
    print(tabulate(rows, headers=["variant", "trainable", "parameters", "ms / step", "peak MB", "stage MB",
                                  "SQuAD dev", "XNLI en"], tablefmt="simple"))
    full, lora = medians["full"], medians["lora"]
    print(f"lora / full: trainable {runs['lora'][0]['trainable'] / runs['full'][0]['trainable']:.2%}, "
          f"step time {lora['seconds'] / full['seconds']:.2f}x, peak memory {lora['peak_bytes'] / full['peak_bytes']:.2f}x, "
          f"stage bytes {scores['lora']['stage_bytes'] / scores['full']['stage_bytes']:.2%}")


if __name__ == "__main__":
    main()
