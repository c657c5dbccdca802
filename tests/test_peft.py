"""Parameter-efficient stages (`train.peft=lora`, or a stage's own `peft`): what enters stage and run
keys, the chain of adapters a later stage loads, and an exported adapter that, merged into the encoder
it was trained on, gives the outputs it gave while training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stilts.checks import check_config
from stilts.errors import StiltsError
from stilts.model.adapters import add_adapter, trainable_parameters
from stilts.model.encoder import load_encoder
from stilts.run.plan import plan_stages
from stilts.store import stages
from stilts.store.stages import EncoderSource
from tests.cli import FAULTS, ONE_THREAD, PARALLEL_SWEEP, out, stilts
from tests.test_configs import compose_config

QUICK = ("+intermediate=squad", "target=xnli", "experiment=quickstart")
LORA = {"method": "lora", "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None}


def _plan(tiny_model_dir, *overrides: str):
    return plan_stages(compose_config(*QUICK, *overrides), str(tiny_model_dir))


def test_full_stages_keep_their_keys_and_adapter_settings_count_only_where_an_adapter_trains(tiny_model_dir) -> None:
    full = [stage.key for stage in _plan(tiny_model_dir)]
    assert [stage.key for stage in _plan(tiny_model_dir, "train.peft=full")] == full
    assert [stage.key for stage in _plan(tiny_model_dir, "train.lora.r=4")] == full  # no stage trains an adapter
    run = compose_config(*QUICK).paths.run_name
    assert compose_config(*QUICK, "train.lora.r=4").paths.run_name == run
    assert compose_config(*QUICK, "train.peft=lora", "train.lora.r=4").paths.run_name != \
        compose_config(*QUICK, "train.peft=lora").paths.run_name

    lora = _plan(tiny_model_dir, "train.peft=lora")
    assert all(stage.peft and stage.peft["method"] == "lora" for stage in lora)
    assert lora[0].key != full[0] and lora[1].key != full[1]
    assert _plan(tiny_model_dir, "train.peft=lora", "train.lora.r=4")[0].key != lora[0].key
    # Each adapter loads on the encoder its stage started from: the pretrained model, then each adapter in order.
    assert lora[0].starts_from == EncoderSource(str(tiny_model_dir))
    assert lora[1].trained_encoder == EncoderSource(str(tiny_model_dir), (str(lora[0].encoder_dir),
                                                                          str(lora[1].encoder_dir)))


def test_a_stage_setting_picks_lora_for_one_stage(tiny_model_dir) -> None:
    lora = _plan(tiny_model_dir, "train.peft=lora")
    intermediate_only = _plan(tiny_model_dir, "+intermediate.squad.peft=lora")
    assert intermediate_only[0].key == lora[0].key  # the same adapter stage, however it was asked for
    target = intermediate_only[1]
    assert target.peft is None and target.starts_from == lora[0].trained_encoder
    assert target.trained_encoder == EncoderSource(str(target.encoder_dir))  # full fine-tuning: its own export
    assert [stage.key for stage in _plan(tiny_model_dir, "train.peft=lora", "+target.peft=full")] == \
        [stage.key for stage in intermediate_only]


@pytest.mark.parametrize("override, message", [
    ("+intermediate.squad.peft=lorax", "intermediate.squad.peft must be one of full, lora or null"),
    ("+target.peft=2", "target.peft must be one of full, lora or null"),
])
def test_a_bad_stage_peft_is_named(override, message) -> None:
    with pytest.raises(StiltsError, match=message):
        check_config(compose_config(*QUICK, override))


def test_a_merged_adapter_gives_the_outputs_it_trained_to(tiny_model_dir, tmp_path) -> None:
    torch.manual_seed(0)
    wrapped = add_adapter(load_encoder(str(tiny_model_dir)), LORA)
    trainable, total = trainable_parameters(wrapped)
    assert 0 < trainable < total / 10
    assert all("lora_" in name for name, parameter in wrapped.named_parameters() if parameter.requires_grad)
    with torch.no_grad():  # a trained adapter: LoRA's B starts at zero, which would make the check vacuous
        for name, parameter in wrapped.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    ids = torch.tensor([[0, 5, 17, 42, 2], [0, 9, 3, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    wrapped.eval()
    expected = wrapped(input_ids=ids, attention_mask=mask).last_hidden_state
    plain = load_encoder(str(tiny_model_dir)).eval()(input_ids=ids, attention_mask=mask).last_hidden_state
    assert not torch.allclose(expected, plain, atol=1e-3)  # the adapter changes the outputs
    wrapped.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    assert {path.name for path in (tmp_path / "adapter").iterdir()} == {"adapter_config.json",
                                                                        "adapter_model.safetensors", "README.md"}
    merged = load_encoder(EncoderSource(str(tiny_model_dir), (str(tmp_path / "adapter"),))).eval()
    assert type(merged).__name__ == "XLMRobertaModel"  # merged: the plain model, no peft wrapper
    torch.testing.assert_close(merged(input_ids=ids, attention_mask=mask).last_hidden_state, expected,
                               atol=1e-5, rtol=1e-4)


# -- through the real CLI ----------------------------------------------------------------------------------
SQUAD_THEN_XNLI = ("+intermediate=squad", "target=xnli", "target.languages=[en]", "experiment=quickstart",
                   "trainer.enable_progress_bar=false")


@pytest.fixture(scope="module")
def full_and_lora(tmp_path_factory, stilts_cache) -> Path:
    """SQuAD then XNLI, every weight trained and with LoRA stages, side by side (one thread each)."""
    workspace = tmp_path_factory.mktemp("peft")
    done = stilts("-m", *SQUAD_THEN_XNLI, "train.peft=null,lora", *PARALLEL_SWEEP, cache=stilts_cache, cwd=workspace,
                  env=ONE_THREAD)
    assert done.returncode == 0, done.stderr[-3000:]
    return workspace


def _squad_stages(workspace: Path) -> dict[str, Path]:
    """The SQuAD stage folders by how they trained ("full", "lora")."""
    found = {}
    for folder in (workspace / "outputs" / "stages").glob("squad-*"):
        summary = json.loads((folder / "stage.json").read_text())
        found["lora" if summary["peft"] else "full"] = folder
    return found


@pytest.mark.slow
def test_a_lora_stage_exports_its_adapter_alone_and_the_target_trains_on_it_merged(full_and_lora) -> None:
    squad = _squad_stages(full_and_lora)
    full_bytes, lora_bytes = (stages.stored_bytes(squad[kind]) for kind in ("full", "lora"))
    assert lora_bytes < full_bytes / 10, (lora_bytes, full_bytes)
    assert {path.name for path in (squad["lora"] / "encoder").iterdir()} <= {
        "adapter_config.json", "adapter_model.safetensors", "README.md"}
    summary = json.loads((squad["lora"] / "stage.json").read_text())
    assert summary["peft"] == {"method": "lora", "r": 8, "alpha": 16.0, "dropout": 0.1, "target_modules": None}
    runs = full_and_lora / "outputs" / "runs"
    lora_run = [folder for folder in (runs / "xnli" / "squad" / "tiny").iterdir()
                if json.loads((folder / "results.json").read_text())["config"]["train"]["peft"] == "lora"]
    results = json.loads((lora_run[0] / "results.json").read_text())
    assert 0 <= results["score"] <= 100
    # The target's adapter trained on the pretrained model with SQuAD's adapter merged into it.
    xnli = json.loads((lora_run[0] / "stages" / "2-xnli" / "stage.json").read_text())
    base, adapter = xnli["encoder_source"].split(" + ")
    assert "tiny-xlmr" in base and Path(adapter).parent.name == squad["lora"].name, xnli["encoder_source"]


@pytest.mark.slow
def test_another_target_reuses_the_lora_stage(full_and_lora, stilts_cache) -> None:
    before = _squad_stages(full_and_lora)
    done = stilts("+intermediate=squad", "target=pawsx", "target.languages=[en]", "experiment=quickstart",
                  "train.peft=lora", cache=stilts_cache, cwd=full_and_lora, env=ONE_THREAD)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Stage 1-squad: reusing" in out(done) and _squad_stages(full_and_lora) == before


@pytest.mark.slow
def test_a_killed_lora_stage_reruns_to_the_same_metrics(full_and_lora, tmp_path, stilts_cache) -> None:
    run = (*SQUAD_THEN_XNLI, "train.peft=lora", "train.checkpoint_every_n_steps=2")
    killed = stilts(*run, cache=stilts_cache, cwd=tmp_path,
                    env={**ONE_THREAD, "STILTS_KILL_AT": "train:squad:3", "PYTHONPATH": str(FAULTS)})
    assert killed.returncode == -9, killed.stderr[-3000:]
    rerun = stilts(*run, cache=stilts_cache, cwd=tmp_path, env=ONE_THREAD)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in out(rerun)
    expected = json.loads((_squad_stages(full_and_lora)["lora"] / "stage.json").read_text())
    got = json.loads((_squad_stages(tmp_path)["lora"] / "stage.json").read_text())
    assert got["resumed_from_steps"] and got["files"] == expected["files"]  # bit for bit: adapter, head, predictions


@pytest.mark.slow
def test_rank_reads_lora_candidates(full_and_lora, stilts_cache) -> None:
    done = stilts("experiment=quickstart", "target=xnli", "target.languages=[en]", "candidates=[squad]", "train.peft=lora",
                  "method=logme", f"paths.output_dir={full_and_lora / 'outputs'}", module="stilts.rank",
                  cache=stilts_cache, cwd=full_and_lora)
    assert done.returncode == 0, done.stderr[-3000:]
    [ranking] = (full_and_lora / "outputs").rglob("ranking.json")
    [candidate] = json.loads(ranking.read_text())["candidates"]
    assert candidate["stage"] and str(_squad_stages(full_and_lora)["lora"].name) in candidate["stage"]


@pytest.mark.slow
def test_a_lora_mixture_under_ddp_then_a_full_target(tmp_path, stilts_cache) -> None:
    """One adapter for the mixture's encoder (a member cannot choose its own), trained on two DDP
    processes; the target then fine-tunes every weight of the merged encoder."""
    run = stilts("+intermediate=mix", "intermediate.mix.tasks=[mnli,hellaswag]", "+intermediate.mix.peft=lora",
                 "target=xnli", "trainer=ddp_cpu", "experiment=quickstart", "target.languages=[en]",
                 "train.max_epochs=1", cache=stilts_cache, cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    [mix] = (tmp_path / "outputs" / "stages").glob("mix-*")
    [xnli] = (tmp_path / "outputs" / "stages").glob("xnli-*")
    mixture, target = (json.loads((folder / "stage.json").read_text()) for folder in (mix, xnli))
    assert mixture["peft"]["method"] == "lora" and mixture["world_size"] == 2
    assert set(mixture["tasks"]) == {"mnli", "hellaswag"} and (mix / "encoder" / "adapter_model.safetensors").exists()
    assert target["peft"] is None and target["encoder_source"].endswith(f"{mix.name}/encoder")
    assert (xnli / "encoder" / "model.safetensors").exists() or "encoder_dropped" in target
    member = stilts("+intermediate=mix", "intermediate.mix.tasks={mnli:{peft:lora},hellaswag:{}}", "target=xnli",
                    "experiment=quickstart", cache=stilts_cache, cwd=tmp_path)
    assert member.returncode == 2
    assert member.stderr.strip().splitlines()[-1] == (
        "error: intermediate.mix.tasks.mnli.peft: a mixture trains one encoder; set intermediate.mix.peft instead")
