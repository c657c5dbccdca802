"""Mixture, MLM and multilingual intermediate stages through the real CLI on the quickstart: they
train, export one encoder and a head per task, record what they trained on, are reused by other
targets, resume exactly after a crash, and run under DDP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.cli import FAULTS, out, run_folder, stilts

QUICK = ("experiment=quickstart", "target.languages=[en,de]")
THREE_HEADS = ("+intermediate=mix", "intermediate.mix.tasks=[squad,mnli,ccg]", "target=xnli", *QUICK,
               "train.checkpoint_every_n_steps=2")
NINE = ["anli_plus", "ccg", "commonsenseqa", "cosmosqa", "hellaswag", "mnli", "qqp", "socialiqa", "squad"]


def _results(workspace: Path, target: str, chain: str, languages=("en", "de")) -> dict:
    folder = run_folder(workspace / "outputs" / "runs", target, chain, languages=list(languages))
    return json.loads((folder / "results.json").read_text())


def _stage(workspace: Path, label: str) -> Path:
    [folder] = (workspace / "outputs" / "stages").glob(f"{label}-*")
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mixtures")


@pytest.fixture(scope="module")
def three_heads(workspace, stilts_cache):
    """A mixture of span QA, classification and tagging, then XNLI: the uninterrupted reference."""
    run = stilts(*THREE_HEADS, cache=stilts_cache, cwd=workspace)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_a_mixture_of_three_head_types_exports_one_encoder_and_three_heads(three_heads, workspace) -> None:
    stage = _stage(workspace, "mix")
    assert (stage / "encoder" / "model.safetensors").exists()
    assert sorted(p.name for p in (stage / "heads").iterdir()) == ["ccg.safetensors", "mnli.safetensors",
                                                                 "squad.safetensors"]
    summary = json.loads((stage / "stage.json").read_text())
    assert {name: facts["head"] for name, facts in summary["tasks"].items()} == {
        "squad": "span_qa", "mnli": "classification", "ccg": "tagging"}
    mixture = summary["mixture"]
    examples = mixture["examples"]
    assert mixture["probabilities"] == pytest.approx({k: v / sum(examples.values()) for k, v in examples.items()})
    # jiant's budget: the sum of each task's epochs (3 in the quickstart) x steps per epoch, in 3 rounds.
    budget = 3 * sum(mixture["steps_per_epoch"].values())
    assert summary["global_steps"] == mixture["total_steps"] and budget <= mixture["total_steps"] < budget + 3
    assert summary["batch_layout"]["accumulate_grad_batches"] == 2  # 16 = 8 x 2 for every task
    results = _results(workspace, "xnli", "mix")
    assert results["intermediate"] == ["mix"]
    assert set(results["intermediate_metrics"]) == {"mix/squad", "mix/mnli", "mix/ccg"}
    assert "accuracy" in results["intermediate_metrics"]["mix/ccg"]
    [described] = results["intermediate_stages"]
    assert described["tasks"] == ["squad", "mnli", "ccg"] and described["multilingual"] is False
    assert described["domains"] == {"squad": "qa", "mnli": "nli", "ccg": "syntax"}
    assert "intermediate mix/mnli (dev)" in three_heads.stdout


@pytest.mark.slow
def test_a_mixture_stage_killed_mid_round_resumes_to_the_same_weights(three_heads, workspace, tmp_path,
                                                                     stilts_cache) -> None:
    killed = stilts(*THREE_HEADS, cache=stilts_cache, cwd=tmp_path,
                    env={"STILTS_KILL_AT": "train:mix:5", "PYTHONPATH": str(FAULTS)})
    assert killed.returncode == -9, killed.stderr[-3000:]
    rerun = stilts(*THREE_HEADS, cache=stilts_cache, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in out(rerun)
    expected, got = _results(workspace, "xnli", "mix"), _results(tmp_path, "xnli", "mix")
    assert got["stages"]["1-mix"]["resumed_from_steps"] == [4]
    assert got["metrics"] == expected["metrics"] and got["intermediate_metrics"] == expected["intermediate_metrics"]
    reference, resumed = _stage(workspace, "mix"), _stage(tmp_path, "mix")
    assert resumed.name == reference.name
    for name in ("encoder/model.safetensors", "heads/squad.safetensors", "heads/mnli.safetensors", "heads/ccg.safetensors"):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.mark.slow
def test_another_target_reuses_the_mixture_stage(three_heads, workspace, stilts_cache) -> None:
    # The same mixture written as a mapping with one task's default spelled out is the same stage.
    run = stilts("+intermediate=mix", "intermediate.mix.tasks={squad: {epochs: 2}, mnli: {}, ccg: {}}",
                 "target=pawsx", *QUICK, cache=stilts_cache, cwd=workspace)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Stage 1-mix: reusing" in out(run) and "Stage 1-mix (intermediate): training" not in out(run)
    assert _results(workspace, "pawsx", "mix")["stages"]["1-mix"]["key"] in _stage(workspace, "mix").name


@pytest.mark.slow
def test_all9_then_xnli(workspace, stilts_cache) -> None:
    run = stilts("+intermediate=all9", "target=xnli", *QUICK, cache=stilts_cache, cwd=workspace, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    stage = _stage(workspace, "all9")
    assert sorted(p.stem for p in (stage / "heads").iterdir()) == NINE
    results = _results(workspace, "xnli", "all9")
    assert sorted(key.split("/")[1] for key in results["intermediate_metrics"]) == NINE
    assert {"qa", "nli", "paraphrase", "commonsense", "syntax"} == set(results["intermediate_stages"][0]["domains"].values())
    assert 0 <= results["score"] <= 100


@pytest.mark.slow
def test_squad_and_mlm_mixture_then_tatoeba(tmp_path, stilts_cache) -> None:
    run = stilts("+intermediate=mix", "intermediate.mix.tasks={squad: {}, mlm: {languages: [de,fr,sw,zh]}}",
                 "target=tatoeba", "experiment=quickstart", cache=stilts_cache, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    stage = _stage(tmp_path, "mix")
    mlm = load_file(str(stage / "heads" / "mlm.safetensors"))
    assert "lm_head.dense.weight" in mlm and "lm_head.decoder.weight" not in mlm  # tied: the encoder has it
    summary = json.loads((stage / "stage.json").read_text())
    assert summary["tasks"]["mlm"]["languages"] == ["de", "fr", "sw", "zh"]
    assert set(summary["tasks"]["mlm"]["dev_metrics"]) == {"de", "fr", "sw", "zh"}
    [folder] = (tmp_path / "outputs" / "runs" / "tatoeba" / "mix" / "tiny").iterdir()
    results = json.loads((folder / "results.json").read_text())
    assert {"accuracy", "perplexity"} <= set(results["intermediate_metrics"]["mix/mlm"])
    assert results["intermediate_stages"][0]["multilingual"] is True
    assert "XTREME score (tatoeba)" in run.stdout


@pytest.mark.slow
def test_pawsx_in_german_and_japanese_then_xnli(tmp_path, stilts_cache) -> None:
    run = stilts("+intermediate=pawsx", "intermediate.pawsx.languages=[de,ja]", "target=xnli", *QUICK,
                 cache=stilts_cache, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    results = _results(tmp_path, "xnli", "pawsx")
    [described] = results["intermediate_stages"]
    assert described["languages"] == {"pawsx": ["de", "ja"]} and described["multilingual"] is True
    summary = json.loads((_stage(tmp_path, "pawsx") / "stage.json").read_text())
    assert set(summary["tasks"]["pawsx"]["dev_metrics"]) == {"de", "ja"}  # one dev set per training language
    # Training on a target's evaluation files is refused.
    leak = stilts("+intermediate=tydiqa", "target=tydiqa", "experiment=quickstart", cache=stilts_cache, cwd=tmp_path)
    assert leak.returncode == 2
    assert "intermediate task tydiqa would train or select models on" in leak.stderr and "Traceback" not in leak.stderr


@pytest.mark.slow
def test_a_mixture_under_ddp_on_two_cpu_processes(tmp_path, stilts_cache) -> None:
    run = stilts("+intermediate=mix", "intermediate.mix.tasks=[mnli,hellaswag]", "target=xnli", "trainer=ddp_cpu",
                 "experiment=quickstart", "target.languages=[en]", "train.max_epochs=1",
                 cache=stilts_cache, cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((_stage(tmp_path, "mix") / "stage.json").read_text())
    assert summary["world_size"] == 2 and summary["batch_layout"]["accumulate_grad_batches"] == 1
    assert run.stdout.count("XTREME score (xnli)") == 1
