"""Bytes on disk of a quickstart grid's stage store, before and after target stages drop their
encoders, and the projection to `experiment=paper_grid` at XLM-R large.

Run by hand (not a test):

    python benchmarks/store_bytes.py                              # paper_grid_quickstart, model=tiny_large
    python benchmarks/store_bytes.py --grid '+intermediate=none,squad,mnli' --grid 'target=xnli,pawsx'

The same grid runs twice through the real CLI, into two output folders: "before" keeps every target
stage's encoder (keep_target_encoders=true, what stilts did before), "after" is the default. Bytes
are counted from the stores' files (`stilts.store` inventory), per stage role and kind, per run, and
checked against what each run says it added (`store_bytes_added`). Bytes are deterministic, so one
pass of each suffices (no timing is measured here).

The projection counts the paper grid's stages from its plan (`stilts.prepare`'s job configs, no data
read) and sizes them from parameter counts at XLM-R large (fp32 encoder built from its config on the
meta device; each task's head at hidden size 1024), XLM-R's tokenizer files, and a stated bound on
dev predictions and metadata per stage. Goal: after a grid the store is at most the intermediate
stages' encoders plus 2% (heads, predictions, metadata).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from common import quiet

# XLM-R large (the Hub's FacebookAI/xlm-roberta-large config.json).
XLMR_LARGE = {"vocab_size": 250002, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
              "intermediate_size": 4096, "max_position_embeddings": 514, "type_vocab_size": 1}
TOKENIZER_BYTES = 5_069_051 + 17_082_734  # the Hub repository's sentencepiece.bpe.model and tokenizer.json
CCG_SUPERTAGS = 1400  # open label set: the supertags seen in CCGbank's training sections (about 1,300), rounded up
# Dev predictions and stage.json per stage, an upper bound: the largest dev sets write under 2 MB
# (QQP's 40,430 labels ~0.3 MB; SQuAD v2's 11,873 answers plus null odds ~1.5 MB).
PREDICTIONS_BOUND = 2_000_000


def start_grid(grid: list[str], output: Path, keep: bool, cache: str) -> subprocess.Popen:
    """The grid into its own output folder, in a process of its own (bytes do not depend on timing, so
    "before" and "after" run side by side, one thread each)."""
    command = [sys.executable, "-m", "stilts.train", "-m", *grid, "model=tiny_large", f"paths.output_dir={output}",
               "trainer.enable_progress_bar=false", f"keep_target_encoders={str(keep).lower()}"]
    environment = dict(os.environ, STILTS_CACHE=cache, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                       WANDB_MODE="offline", OMP_NUM_THREADS="1")
    print(f"running {' '.join(command[3:])} ...", flush=True)
    return subprocess.Popen(command, cwd=output, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish_grid(process: subprocess.Popen) -> None:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the grid failed:\n{stdout[-2000:]}\n{stderr[-3000:]}")


def measure(output: Path) -> dict:
    """Bytes per role and kind, per run, and what the runs say they added."""
    from stilts.store.inventory import scan

    entries = scan(output / "stages", [output / "runs"])
    roles: dict[str, Counter] = {}
    for entry in entries:
        counter = roles.setdefault(entry.role or "-", Counter())
        counter["stages"] += 1
        counter.update(entry.bytes)
        counter["resume"] += entry.resume_bytes
    runs = [json.loads(path.read_text()) for path in (output / "runs").rglob("results.json")]
    total = sum(entry.size for entry in entries)
    return {"roles": roles, "total": total, "runs": len(runs),
            "added": [run["store_bytes_added"] for run in runs],
            "intermediate_encoders": roles.get("intermediate", Counter())["encoder"]}


def _mb(count: float) -> str:
    return f"{count / 1e6:,.2f} MB"


def print_measured(before: dict, after: dict) -> None:
    print("\nmeasured (model=tiny_large)")
    print(f"{'role':<14}{'stages':>7}{'encoder':>14}{'heads':>12}{'predictions':>13}{'metadata':>11}"
          f"{'before':>14}{'after':>14}")
    for role in sorted(set(before["roles"]) | set(after["roles"])):
        b, a = before["roles"].get(role, Counter()), after["roles"].get(role, Counter())
        size_b = sum(b[kind] for kind in ("encoder", "heads", "predictions", "metadata"))
        size_a = sum(a[kind] for kind in ("encoder", "heads", "predictions", "metadata"))
        print(f"{role:<14}{a['stages']:>7}{_mb(a['encoder']):>14}{_mb(a['heads']):>12}{_mb(a['predictions']):>13}"
              f"{_mb(a['metadata']):>11}{_mb(size_b):>14}{_mb(size_a):>14}")
    print(f"{'store':<14}{'':>67}{_mb(before['total']):>14}{_mb(after['total']):>14}")
    for name, measured in (("before", before), ("after", after)):
        added = measured["added"]
        print(f"{name}: {measured['runs']} runs, {_mb(measured['total'] / measured['runs'])} per run; store_bytes_added "
              f"median {_mb(statistics.median(added))}, sum {_mb(sum(added))} (store {_mb(measured['total'])})")
    overhead = after["total"] / after["intermediate_encoders"] - 1
    print(f"after / intermediate encoders = 1 + {overhead:.2%}; before / after = {before['total'] / after['total']:.1f}x")


def _parameters(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def paper_grid_projection() -> None:
    import torch
    from transformers import AutoModel, XLMRobertaConfig

    from stilts.heads import head_of
    from stilts.run.plan import stage_tasks
    from stilts.cli.prepare import job_configs

    with torch.device("meta"):
        encoder = AutoModel.from_config(XLMRobertaConfig(**XLMR_LARGE), add_pooling_layer=False)
    encoder_bytes = 4 * _parameters(encoder) + TOKENIZER_BYTES
    head_bytes: dict[str, int] = {}
    stages: dict[tuple, tuple[str, list]] = {}
    for cfg in job_configs(["experiment=paper_grid"], multirun=True):
        chain: tuple = (cfg.seed,)
        for planned in stage_tasks(cfg):
            chain = (*chain, planned.label)
            stages[chain] = (planned.role, [task.spec for task in planned.tasks.values()])
    for _, specs in stages.values():
        for spec in specs:
            if spec.name not in head_bytes:
                labels = len(spec.labels) or CCG_SUPERTAGS
                with torch.device("meta"):
                    head_bytes[spec.name] = 4 * _parameters(head_of(spec).module(XLMR_LARGE["hidden_size"], labels))
    count = Counter(role for role, _ in stages.values())
    heads = sum(head_bytes[spec.name] for _, specs in stages.values() for spec in specs)
    intermediate_encoders = count["intermediate"] * encoder_bytes
    rest = heads + len(stages) * PREDICTIONS_BOUND
    before = intermediate_encoders + count["target"] * encoder_bytes + rest
    after = intermediate_encoders + rest
    print(f"\nprojected: experiment=paper_grid at XLM-R large ({_parameters(encoder) / 1e6:,.0f}M parameters, "
          f"{encoder_bytes / 1e9:.2f} GB per encoder folder in fp32 with its tokenizer)")
    print(f"stages: {count['intermediate']} intermediate, {count['target']} target; heads {heads / 1e9:.2f} GB; "
          f"predictions and metadata at most {len(stages) * PREDICTIONS_BOUND / 1e9:.2f} GB")
    print(f"before: {before / 1e9:,.1f} GB   after: {after / 1e9:,.1f} GB   "
          f"(intermediate encoders {intermediate_encoders / 1e9:,.1f} GB + {rest / intermediate_encoders:.2%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", action="append", default=None,
                        help="sweep overrides (default: experiment=paper_grid_quickstart)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the two output folders here")
    args = parser.parse_args()
    quiet()
    grid = args.grid or ["experiment=paper_grid_quickstart"]
    cache = os.environ.get("STILTS_CACHE", os.path.expanduser("~/.cache/stilts"))
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        started = {}
        for name, keep in (("before", True), ("after", False)):
            (root / name).mkdir(parents=True, exist_ok=True)
            started[name] = start_grid(grid, root / name, keep, cache)
        for process in started.values():
            finish_grid(process)
        print_measured(measure(root / "before"), measure(root / "after"))
    paper_grid_projection()


if __name__ == "__main__":
    main()
