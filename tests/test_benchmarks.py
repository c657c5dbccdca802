"""Benchmarks are run by hand (the GPU throughput one on a GPU machine); CI checks that each starts and
reports its comparison, run small on CPU (the GPU one with bf16 autocast and gradient checkpointing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_throughput_benchmark_runs_small_on_cpu(stilts_cache) -> None:
    pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (the dev extra)")
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_throughput.py"), "--size", "tiny", "--examples", "64",
         "--batch-size", "8", "--warmup", "1", "--steps", "2", "--repeats", "1", "--gradient-checkpointing",
         "--precision", "bf16-mixed"],  # the GPU run's autocast and checkpointing paths, on CPU
        env=dict(os.environ, STILTS_CACHE=str(stilts_cache), CUDA_VISIBLE_DEVICES=""),
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.strip().startswith("stilts ") for line in lines)
    assert any(line.strip().startswith("transformers.Trainer ") for line in lines)
    ratio = float(lines[-1].rsplit(" ", 1)[-1].rstrip("x"))
    assert ratio > 0


@pytest.mark.slow
def test_store_bytes_benchmark_runs_on_a_small_grid(stilts_cache) -> None:
    """Before (target encoders kept) and after (dropped) on two runs, and the paper-grid projection."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "store_bytes.py"), "--grid", "+intermediate=none,squad",
         "--grid", "target=xnli", "--grid", "target.languages=[en]", "--grid", "experiment=quickstart"],
        env=dict(os.environ, STILTS_CACHE=str(stilts_cache)), capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "before: 2 runs" in done.stdout and "after: 2 runs" in done.stdout
    assert "stages: 30 intermediate, 231 target" in done.stdout  # the paper grid's plan at XLM-R large
    [ratio] = [line for line in done.stdout.splitlines() if line.startswith("after / intermediate encoders")]
    assert float(ratio.split("before / after = ")[1].rstrip("x")) > 1  # dropping target encoders saves bytes


@pytest.mark.slow
def test_peft_benchmark_compares_full_and_lora_stages(stilts_cache) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "peft_stage.py"), "--shape", "tiny", "--repeats", "1", "--steps", "2",
         "--batch-size", "4", "--length", "32"],
        env=dict(os.environ, STILTS_CACHE=str(stilts_cache)), capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    trainable = {match[1]: int(match[2].replace(",", "")) for match in re.finditer(r"^(full|lora)\s+([\d,]+)\s",
                                                                                    done.stdout, re.M)}
    assert set(trainable) == {"full", "lora"} and trainable["lora"] < trainable["full"] / 10
    [ratios] = [line for line in done.stdout.splitlines() if line.startswith("lora / full:")]
    assert float(ratios.rsplit("stage bytes ", 1)[1].rstrip("%")) < 10
