"""Every encoder family stilts runs (XLM-R; BERT-style, as mBERT and multilingual-e5; DeBERTa-v2, as
mDeBERTa-v3), through a tiny model of each built locally with the same tokenizer: every head type
trains a step on a real batch of a task of that head, the MLM head is the family's own, retrieval
embeds with a layer cut, gradient checkpointing gives the same gradients, and a model= preset of each
real family composes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from stilts.data.datamodule import TaskDataModule
from stilts.heads import head_of
from stilts.model.embeddings import EmbeddingSettings, SentenceEmbedder
from stilts.model.encoder import load_encoder, load_mlm_head, load_tokenizer, resolve_pretrained
from stilts.model.module import StiltsModule
from stilts.model.tiny import FAMILIES
from stilts.tasks import get_task
from stilts.tasks.common.sources import SAMPLES_ROOT
from tests.cli import ONE_THREAD, PARALLEL_SWEEP, stilts
from tests.test_configs import compose_config

ENCODERS = {"xlm-roberta": "XLMRobertaModel", "bert": "BertModel", "deberta-v2": "DebertaV2Model"}
# A task of every head type, read from the shipped samples.
HEAD_TASKS = {"classification": "xnli", "span_qa": "squad", "tagging": "udpos", "multiple_choice": "hellaswag",
              "mlm": "mlm", "dual_encoder": "squad_pairs"}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_model(request, stilts_cache) -> tuple[str, str]:
    return request.param, resolve_pretrained("tiny", stilts_cache, {"family": request.param})


def test_each_family_builds_its_own_encoder_with_the_xlmr_tokenizer(family_model) -> None:
    family, path = family_model
    assert type(load_encoder(path)).__name__ == ENCODERS[family]
    assert load_tokenizer(path).mask_token == "<mask>"


@pytest.mark.parametrize("head", sorted(HEAD_TASKS))
def test_every_head_type_trains_a_step_on_each_family(family_model, head, tmp_path) -> None:
    _, path = family_model
    spec = get_task(HEAD_TASKS[head])
    assert spec.head == head
    tokenizer = load_tokenizer(path)
    data = TaskDataModule(spec, tokenizer, root=SAMPLES_ROOT, cache_dir=tmp_path, train=True, micro_batch_size=4)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    torch.manual_seed(0)
    encoder = load_encoder(path)
    module = StiltsModule(encoder, {spec.name: load_mlm_head(path, encoder) if head_of(spec).starts_from_pretrained_lm
                                    else head_of(spec).module(encoder.config.hidden_size, len(data.labels))})
    loss = module(batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    encoder_gradients = [p.grad for p in encoder.parameters() if p.grad is not None]
    assert encoder_gradients and any(bool(g.abs().sum() > 0) for g in encoder_gradients)


def test_the_mlm_head_is_the_family_s_own_tied_to_the_input_embeddings(family_model) -> None:
    from transformers import AutoModelForMaskedLM

    _, path = family_model
    encoder = load_encoder(path)
    head = load_mlm_head(path, encoder)
    pretrained = AutoModelForMaskedLM.from_pretrained(path)
    decoder = head.lm_head.get_submodule(head._decoder.removeprefix("lm_head."))
    assert decoder.weight is encoder.get_input_embeddings().weight
    exported = head.exported_state()
    assert f"{head._decoder}.weight" not in exported and exported  # the encoder's, not the head's
    own = {name: tensor for name, tensor in pretrained.state_dict().items() if not name.startswith(
        pretrained.base_model_prefix + ".")}
    for name, tensor in exported.items():  # the pretrained model's own head weights, not new ones
        assert torch.equal(tensor, own[name.replace("lm_head.", _head_prefix(pretrained), 1)]), name


def _head_prefix(model) -> str:
    [name] = [name for name, child in model.named_children() if child is not model.base_model]
    return f"{name}."


def test_retrieval_embeds_with_a_layer_cut_on_each_family(family_model) -> None:
    _, path = family_model
    full = load_encoder(path).eval()
    embedder = SentenceEmbedder(load_encoder(path), load_tokenizer(path), EmbeddingSettings(layer=1), device="cpu")
    assert embedder.cut and embedder.encoder.config.num_hidden_layers == 1
    vectors = embedder(["a short sentence", "another one, longer than the first"])
    assert vectors.shape == (2, full.config.hidden_size)
    assert torch.allclose(torch.from_numpy(vectors).norm(dim=-1), torch.ones(2), atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients_on_each_family(family_model) -> None:
    """model.gradient_checkpointing=true recomputes activations (non-reentrant, dropout masks
    replayed): the gradients, and so the trained weights, are the same."""
    _, path = family_model
    gradients = []
    for checkpointing in (False, True):
        encoder = load_encoder(path)
        if checkpointing:
            encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        encoder.train()
        torch.manual_seed(0)
        ids = torch.randint(5, 100, (2, 12))
        encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.pow(2).mean().backward()
        gradients.append({name: p.grad.clone() for name, p in encoder.named_parameters() if p.grad is not None})
    assert gradients[0].keys() == gradients[1].keys()
    for name, gradient in gradients[0].items():
        assert torch.allclose(gradient, gradients[1][name], atol=1e-6), name


@pytest.mark.parametrize("preset, hub_id", [
    ("xlmr_base", "xlm-roberta-base"), ("xlmr_large", "xlm-roberta-large"),
    ("mbert", "bert-base-multilingual-cased"), ("mdeberta_v3_base", "microsoft/mdeberta-v3-base"),
    ("me5_small", "intfloat/multilingual-e5-small"), ("me5_base", "intfloat/multilingual-e5-base"),
    ("me5_large", "intfloat/multilingual-e5-large")])
def test_each_family_has_a_model_preset_with_its_retrieval_layer(preset, hub_id) -> None:
    cfg = compose_config(f"model={preset}")
    assert cfg.model.name_or_path == hub_id and cfg.model.retrieval_layer >= 1
    text = (Path(__file__).resolve().parents[1] / "conf" / "model" / f"{preset}.yaml").read_text(encoding="utf-8")
    assert re.search(r"#.*(XTREME|Phang et al|model card)", text), preset  # where its retrieval layer comes from


@pytest.mark.slow
def test_an_mlm_stage_then_a_target_runs_on_the_other_families(tmp_path, stilts_cache) -> None:
    """Through the real CLI: the family's own MLM head, then classification, each family in its run folder."""
    done = stilts("-m", "model=tiny_bert,tiny_deberta", "+intermediate=mlm", "target=xnli", "target.languages=[en]",
                  "experiment=quickstart", "trainer.enable_progress_bar=false", *PARALLEL_SWEEP, cache=stilts_cache,
                  cwd=tmp_path, env=ONE_THREAD)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 jobs: 2 done" in done.stdout
    for label in ("tiny-bert", "tiny-deberta"):
        [run] = (tmp_path / "outputs" / "runs" / "xnli" / "mlm" / label).iterdir()
        results = json.loads((run / "results.json").read_text())
        assert 0 <= results["score"] <= 100 and results["intermediate_metrics"]["mlm"]
