"""The heads' torch modules: shapes, losses against hand computations, and masking; each head type
builds its own."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from stilts.errors import StiltsError
from stilts.heads import HEADS, IGNORE_INDEX, get_head
from stilts.heads.networks import ClassificationHead, DualEncoderHead, MultipleChoiceHead, SpanQAHead, TaggingHead

HIDDEN = 16


def _head(kind: str, num_labels: int = 3):
    torch.manual_seed(0)
    head = get_head(kind).module(HIDDEN, num_labels, dropout=0.1)
    head.eval()  # no dropout: outputs are deterministic functions of the hidden states
    return head


def test_each_head_type_builds_its_module_and_the_pretrained_ones_refuse() -> None:
    assert isinstance(get_head("classification").module(HIDDEN, 3), ClassificationHead)
    assert isinstance(get_head("tagging").module(HIDDEN, 17), TaggingHead)
    assert isinstance(get_head("multiple_choice").module(HIDDEN, 0), MultipleChoiceHead)
    assert isinstance(get_head("span_qa").module(HIDDEN, 0), SpanQAHead)
    assert isinstance(get_head("dual_encoder").module(HIDDEN, 0), DualEncoderHead)
    assert get_head("mlm").starts_from_pretrained_lm  # the pretrained model's own LM head (model.encoder)
    for name in ("mlm", "retrieval"):
        with pytest.raises(StiltsError, match="not built fresh"):
            get_head(name).module(HIDDEN, 1)


def test_every_head_name_a_task_may_give_has_a_head_type() -> None:
    from typing import get_args

    from stilts.tasks import get_task, task_names
    from stilts.tasks.spec import Head

    assert set(get_args(Head)) == set(HEADS)
    assert all(get_task(name).head in HEADS for name in task_names())


# -- classification -------------------------------------------------------------------------------
def test_classification_shapes_and_loss() -> None:
    head = _head("classification", 3)
    hidden = torch.randn(4, 7, HIDDEN)
    batch = {"labels": torch.tensor([0, 2, 1, 2])}
    out = head(hidden, batch)
    assert out.logits.shape == (4, 3)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    expected = F.cross_entropy(out.logits, batch["labels"])
    assert torch.allclose(out.loss, expected)
    # by hand: mean of -log softmax at the gold class
    manual = -torch.stack([F.log_softmax(out.logits[i], -1)[y] for i, y in enumerate(batch["labels"])]).mean()
    assert torch.allclose(out.loss, manual, atol=1e-6)
    assert head.predict(out.logits, batch) == out.logits.argmax(-1).tolist()


def test_classification_uses_first_token_only() -> None:
    head = _head("classification", 3)
    hidden = torch.randn(2, 5, HIDDEN)
    changed = hidden.clone()
    changed[:, 1:] = torch.randn(2, 4, HIDDEN) * 10
    a, b = head(hidden, {}), head(changed, {})
    assert a.loss is None
    assert torch.equal(a.logits, b.logits)
    changed[:, 0] += 1.0
    assert not torch.allclose(head(changed, {}).logits, a.logits)


# -- multiple choice ------------------------------------------------------------------------------
def test_multiple_choice_reshapes_and_ce_over_choices() -> None:
    head = _head("multiple_choice")
    batch_size, choices, length = 3, 4, 6
    hidden = torch.randn(batch_size * choices, length, HIDDEN)  # the encoder sees [B*C, L]
    batch = {"input_ids": torch.zeros(batch_size, choices, length, dtype=torch.long), "labels": torch.tensor([3, 0, 1])}
    out = head(hidden, batch)
    assert out.logits.shape == (batch_size, choices)
    # each score is the scorer applied to the first token of that (example, choice) sequence
    scores = head.scorer(hidden[:, 0]).view(batch_size, choices)
    assert torch.allclose(out.logits, scores)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    manual = -torch.stack([F.log_softmax(scores[i], -1)[y] for i, y in enumerate(batch["labels"])]).mean()
    assert torch.allclose(out.loss, manual, atol=1e-6)
    assert head.predict(out.logits, batch) == scores.argmax(-1).tolist()


def test_multiple_choice_first_token_only() -> None:
    head = _head("multiple_choice")
    hidden = torch.randn(2 * 4, 5, HIDDEN)
    batch = {"input_ids": torch.zeros(2, 4, 5, dtype=torch.long)}
    changed = hidden.clone()
    changed[:, 1:] += 3.0
    assert torch.equal(head(hidden, batch).logits, head(changed, batch).logits)


# -- tagging --------------------------------------------------------------------------------------
def _tagging_batch():
    labels = torch.tensor([
        [IGNORE_INDEX, 4, IGNORE_INDEX, 1, 0, IGNORE_INDEX],
        [IGNORE_INDEX, 2, 3, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
    ])
    return {"labels": labels, "attention_mask": torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])}


def test_tagging_shapes_and_loss() -> None:
    head = _head("tagging", 5)
    hidden = torch.randn(2, 6, HIDDEN)
    batch = _tagging_batch()
    out = head(hidden, batch)
    assert out.logits.shape == (2, 6, 5)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    keep = batch["labels"] != IGNORE_INDEX
    manual = -F.log_softmax(out.logits[keep], -1).gather(1, batch["labels"][keep].unsqueeze(1)).mean()
    assert torch.allclose(out.loss, manual, atol=1e-6)


def test_tagging_loss_ignores_ignored_positions() -> None:
    head = _head("tagging", 5)
    hidden = torch.randn(2, 6, HIDDEN)
    batch = _tagging_batch()
    base = head(hidden, batch).loss
    changed = hidden.clone()
    ignored = batch["labels"] == IGNORE_INDEX
    changed[ignored] = torch.randn(int(ignored.sum()), HIDDEN) * 50
    assert torch.allclose(head(changed, batch).loss, base)
    # sanity: changing a labelled position does change the loss
    changed[0, 1] += 5.0
    assert not torch.allclose(head(changed, batch).loss, base)


def test_tagging_predict_one_label_per_word_start() -> None:
    head = _head("tagging", 5)
    batch = _tagging_batch()
    logits = torch.full((2, 6, 5), -1.0)
    # the argmax at every position is its position index mod 5, so we can see which positions were read
    for row in range(2):
        for pos in range(6):
            logits[row, pos, pos % 5] = 1.0
    predicted = head.predict(logits, batch)
    assert predicted == [[1, 3, 4], [1, 2]]


# -- span QA --------------------------------------------------------------------------------------
def _qa_batch():
    mask = torch.tensor([[1] * 8, [1, 1, 1, 1, 1, 0, 0, 0]])
    return {"attention_mask": mask, "start_positions": torch.tensor([2, 0]), "end_positions": torch.tensor([4, 0])}


def test_span_qa_shapes_loss_and_padding_mask() -> None:
    head = _head("span_qa")
    hidden = torch.randn(2, 8, HIDDEN)
    batch = _qa_batch()
    out = head(hidden, batch)
    assert out.logits.shape == (2, 8, 2)
    padded = batch["attention_mask"] == 0
    assert (out.logits[padded] == torch.finfo(out.logits.dtype).min).all()
    assert (out.logits[~padded] > torch.finfo(out.logits.dtype).min).all()
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    raw = head.qa_outputs(hidden)
    start = raw[..., 0].masked_fill(padded, torch.finfo(raw.dtype).min)
    end = raw[..., 1].masked_fill(padded, torch.finfo(raw.dtype).min)
    expected = (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
    assert torch.allclose(out.loss, expected, atol=1e-6)
    # by hand for the padded row: only the 5 real positions enter the softmax
    row = raw[1, :5, 0]
    assert torch.allclose(F.cross_entropy(start[1:2], batch["start_positions"][1:2]),
                          -F.log_softmax(row, -1)[0], atol=1e-6)


def test_span_qa_padding_does_not_change_loss() -> None:
    head = _head("span_qa")
    hidden = torch.randn(2, 8, HIDDEN)
    batch = _qa_batch()
    base = head(hidden, batch)
    changed = hidden.clone()
    changed[1, 5:] = torch.randn(3, HIDDEN) * 100
    out = head(changed, batch)
    assert torch.equal(out.loss, base.loss)
    assert torch.equal(out.logits, base.logits)


def test_span_qa_predict_never_picks_padding() -> None:
    head = SpanQAHead(HIDDEN, n_best=4)
    head.eval()
    # large positive raw logits at padded positions must still lose to any real position
    hidden = torch.randn(2, 8, HIDDEN)
    with torch.no_grad():
        head.qa_outputs.weight.zero_()
        head.qa_outputs.bias.fill_(0.0)
        head.qa_outputs.weight[:, 0] = 1.0
    hidden[:, :, 0] = torch.arange(8, dtype=torch.float)  # raw logits grow with position: padding scores highest
    batch = _qa_batch()
    with torch.no_grad():
        logits = head(hidden, batch).logits
        predictions = head.predict(logits, batch)
    assert len(predictions) == 2
    assert predictions[1]["start_index"] == [4, 3, 2, 1]
    assert predictions[1]["end_index"] == [4, 3, 2, 1]
    assert predictions[0]["start_index"] == [7, 6, 5, 4]
    for prediction in predictions:
        assert set(prediction) == {"start_index", "start_logit", "end_index", "end_logit", "null_score"}
        assert len(prediction["start_logit"]) == 4
    assert predictions[1]["null_score"] == pytest.approx(float(logits[1, 0, 0] + logits[1, 0, 1]))


def test_span_qa_predict_random_never_padding() -> None:
    head = SpanQAHead(HIDDEN, n_best=5)
    head.eval()
    torch.manual_seed(1)
    mask = torch.zeros(6, 12, dtype=torch.long)
    lengths = [12, 5, 7, 9, 6, 10]
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    hidden = torch.randn(6, 12, HIDDEN) * 5
    with torch.no_grad():
        predictions = head.predict(head(hidden, {"attention_mask": mask}).logits, {"attention_mask": mask})
    for n, prediction in zip(lengths, predictions):
        assert all(i < n for i in prediction["start_index"] + prediction["end_index"])


def test_span_qa_loss_only_with_positions_and_bf16_mask() -> None:
    head = _head("span_qa").to(torch.bfloat16)
    hidden = torch.randn(1, 4, HIDDEN, dtype=torch.bfloat16)
    out = head(hidden, {"attention_mask": torch.tensor([[1, 1, 0, 0]])})
    assert out.loss is None
    assert (out.logits[0, 2:] == torch.finfo(torch.bfloat16).min).all()
    predictions = head.predict(out.logits.detach(), {})
    assert all(i < 2 for i in predictions[0]["start_index"][:2])
