"""Masked LM: BERT's 15% / 80-10-10 masking statistics, masks that replay exactly, and the
pretrained LM head tied to the encoder's input embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stilts.data.collate import MaskingCollator
from stilts.heads import IGNORE_INDEX
from stilts.tasks import get_task
from stilts.tasks.common.sources import SAMPLES_ROOT, read_files

VOCAB, MASK, PAD, SPECIAL = 1000, 999, 1, (0, 1, 2, 3, 999)


def _collator(seed: int = 0) -> MaskingCollator:
    return MaskingCollator(PAD, MASK, VOCAB, SPECIAL, seed=seed, task="mlm")


def _features(count: int = 400, length: int = 100) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"input_ids": [0, *rng.integers(4, 999, length - 2).tolist(), 2], "attention_mask": [1] * length,
             "feature_index": i} for i in range(count)]


def test_masking_follows_bert_s_recipe() -> None:
    features = _features()
    batch = _collator()(features)
    original = torch.tensor([f["input_ids"] for f in features])
    chosen = batch["labels"] != IGNORE_INDEX
    assert chosen.float().mean().item() == pytest.approx(0.15, abs=0.01)
    assert (batch["labels"][chosen] == original[chosen]).all()  # the gold is the original token
    assert not chosen[:, 0].any() and not chosen[:, -1].any()  # specials are never predicted
    masked = (batch["input_ids"] == MASK) & chosen
    kept = (batch["input_ids"] == original) & chosen
    randomised = chosen & ~masked & ~kept
    total = chosen.sum().item()
    assert masked.sum().item() / total == pytest.approx(0.8, abs=0.02)
    assert kept.sum().item() / total == pytest.approx(0.1, abs=0.02)  # (a random token may equal the original)
    assert randomised.sum().item() / total == pytest.approx(0.1, abs=0.02)
    assert not torch.isin(batch["input_ids"][randomised], torch.tensor(SPECIAL)).any()
    assert (batch["input_ids"][~chosen] == original[~chosen]).all()
    assert batch["task"] == "mlm"


def test_a_mask_depends_on_seed_feature_and_pass_alone() -> None:
    features = _features(count=8)
    first = _collator()(features, passes=[0] * 8)
    again = _collator()(list(reversed(features)), passes=[0] * 8)  # another batch order, another instance
    assert torch.equal(first["labels"], again["labels"].flip(0))
    assert not torch.equal(first["labels"], _collator()(features, passes=[1] * 8)["labels"])  # each pass masks anew
    assert not torch.equal(first["labels"], _collator(seed=1)(features, passes=[0] * 8)["labels"])
    collator = _collator()
    collator.epoch = 1  # the single-task loader sets the pass as the epoch
    assert torch.equal(collator(features)["labels"], _collator()(features, passes=[1] * 8)["labels"])


def test_every_sequence_has_a_masked_token() -> None:
    short = [{"input_ids": [0, 5, 2], "attention_mask": [1, 1, 1], "feature_index": i} for i in range(50)]
    batch = _collator()(short)
    assert ((batch["labels"] != IGNORE_INDEX).sum(-1) == 1).all()  # no batch without a loss


def test_the_pretrained_lm_head_is_tied_to_the_input_embeddings(tiny_model_dir) -> None:
    from transformers import AutoModelForMaskedLM

    from stilts.model.encoder import load_encoder, load_mlm_head

    encoder = load_encoder(str(tiny_model_dir))
    head = load_mlm_head(str(tiny_model_dir), encoder)
    embeddings = encoder.get_input_embeddings().weight
    assert head.lm_head.decoder.weight is embeddings
    assert head.lm_head.decoder.bias is head.lm_head.bias
    pretrained = AutoModelForMaskedLM.from_pretrained(str(tiny_model_dir)).lm_head
    assert torch.equal(head.lm_head.dense.weight, pretrained.dense.weight)  # the model's own head, not a new one
    assert set(head.exported_state()) == {"lm_head.bias", "lm_head.dense.weight", "lm_head.dense.bias",
                                          "lm_head.layer_norm.weight", "lm_head.layer_norm.bias"}
    # A step on the MLM loss moves the shared matrix once, through both of its uses.
    hidden = torch.randn(2, 5, encoder.config.hidden_size)
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[0, 1], labels[1, 3] = 7, 9
    output = head(hidden, {"labels": labels})
    output.loss.backward()
    assert embeddings.grad is not None and embeddings.grad[[7, 9]].abs().sum() > 0
    counts = head.predict(output.logits, {"labels": labels})
    assert [row[1] for row in counts] == [1.0, 1.0] and all(row[2] > 0 for row in counts)


def test_the_shipped_mlm_samples_cover_xtreme_s_40_languages() -> None:
    spec = get_task("mlm")
    assert len(spec.languages) == 40
    for language in spec.languages:
        for split in ("train", "dev"):
            lines = read_files(spec, split, language, SAMPLES_ROOT)
            assert lines and all(example["text"] for example in lines)
