"""The heads' torch modules. Each maps encoder hidden states to logits, a loss when gold is in the
batch, and per-feature predictions compact enough to gather across DDP ranks. Each head type builds
its own (`HeadType.module`); they live apart so that reading settings or scoring files never
imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from stilts.heads.base import IGNORE_INDEX



@dataclass
class HeadOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class ClassificationHead(nn.Module):
    """Sentence(-pair) classification on the first token, as RoBERTa/XLM-R classification heads do."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> HeadOutput:
        pooled = torch.tanh(self.dense(self.dropout(hidden[:, 0])))
        logits = self.out_proj(self.dropout(pooled))
        loss = F.cross_entropy(logits, batch["labels"]) if "labels" in batch else None
        return HeadOutput(logits, loss)

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[int]:
        return logits.argmax(-1).tolist()


class MultipleChoiceHead(nn.Module):
    """One score per (context, choice) sequence from its first token; softmax over the choices."""

    def __init__(self, hidden_size: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.scorer = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> HeadOutput:
        num_choices = batch["input_ids"].shape[1]
        logits = self.scorer(self.dropout(hidden[:, 0])).view(-1, num_choices)
        loss = F.cross_entropy(logits, batch["labels"]) if "labels" in batch else None
        return HeadOutput(logits, loss)

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[int]:
        return logits.argmax(-1).tolist()


class TaggingHead(nn.Module):
    """A label per first sub-word of each word; other sub-words and padding carry IGNORE_INDEX."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> HeadOutput:
        logits = self.classifier(self.dropout(hidden))
        loss = None
        if "labels" in batch:
            loss = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)
        return HeadOutput(logits, loss)

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[list[int]]:
        """Label ids of the word-initial positions, in word order."""
        word_starts = batch["labels"] != IGNORE_INDEX
        best = logits.argmax(-1)
        return [row[starts].tolist() for row, starts in zip(best, word_starts)]


class SpanQAHead(nn.Module):
    """Start/end logits per token. Padding can never be a boundary; an unanswerable question
    (SQuAD v2) points both boundaries at the first token."""

    def __init__(self, hidden_size: int, n_best: int = 20) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)
        self.n_best = n_best

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> HeadOutput:
        logits = self.qa_outputs(hidden)
        padding = batch["attention_mask"] == 0
        logits = logits.masked_fill(padding.unsqueeze(-1), torch.finfo(logits.dtype).min)
        loss = None
        if "start_positions" in batch:
            start, end = logits.unbind(-1)
            loss = (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
        return HeadOutput(logits, loss)

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """Top-n start and end candidates and the no-answer score, per feature."""
        start, end = logits.detach().float().unbind(-1)
        k = min(self.n_best, start.shape[-1])
        top_start, top_end = start.topk(k, dim=-1), end.topk(k, dim=-1)
        null = start[:, 0] + end[:, 0]
        return [
            {
                "start_index": top_start.indices[i].tolist(), "start_logit": top_start.values[i].tolist(),
                "end_index": top_end.indices[i].tolist(), "end_logit": top_end.values[i].tolist(),
                "null_score": float(null[i]),
            }
            for i in range(start.shape[0])
        ]


class MaskedLMHead(nn.Module):
    """The pretrained model's own LM head (XLM-R: dense, GELU, LayerNorm, then a decoder whose
    weight is the encoder's input embedding matrix; BERT and DeBERTa-v2 alike). Vocabulary logits
    are computed at the masked positions only: with XLM-R's 250k-token vocabulary, full logits would
    dwarf the encoder's memory."""

    def __init__(self, lm_head: nn.Module, decoder: nn.Linear, input_embeddings: nn.Embedding) -> None:
        """`decoder`: the linear layer inside `lm_head` that gives the vocabulary logits."""
        super().__init__()
        self.lm_head = lm_head
        decoder.weight = input_embeddings.weight
        [self._decoder] = [f"lm_head.{name}" for name, module in lm_head.named_modules() if module is decoder]

    def exported_state(self) -> dict[str, torch.Tensor]:
        """What the stage exports: each tensor once (a decoder's bias is often the head's own), not the
        decoder's weight (the encoder's input embeddings)."""
        kept, seen = {}, set()
        for name, tensor in self.state_dict().items():
            if name != f"{self._decoder}.weight" and tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                kept[name] = tensor
        return kept

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> HeadOutput:
        masked = batch["labels"] != IGNORE_INDEX
        logits = self.lm_head(hidden[masked])
        return HeadOutput(logits, F.cross_entropy(logits, batch["labels"][masked]))

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[list[float]]:
        """Per feature: [masked tokens predicted right, masked tokens, their summed negative log-likelihood]."""
        masked = batch["labels"] != IGNORE_INDEX
        gold = batch["labels"][masked]
        rows = masked.nonzero()[:, 0]
        correct = (logits.argmax(-1) == gold).float()
        nll = F.cross_entropy(logits.float(), gold, reduction="none")
        size = batch["labels"].shape[0]
        sums = torch.zeros(size, 3, dtype=torch.float64, device=logits.device)
        sums.index_add_(0, rows, torch.stack([correct, torch.ones_like(correct), nll.detach()], dim=1).double())
        return sums.tolist()


class DualEncoderHead(nn.Module):
    """XTREME-R's dual encoder for retrieval (google-research/xtreme third_party/bert.py
    `BertForRetrieval`): one shared encoder embeds a query and its candidate; each is the first
    token's state through a dense+tanh pooler, L2-normalised. The loss is a softmax over the
    candidates of the micro-batch (in-batch negatives), similarities times a learned logit scale
    that starts at 100. Its "logits" are the vectors, [batch, 2 (query, candidate), hidden]."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.logit_scale = nn.Parameter(torch.tensor([100.0]))

    def embed(self, hidden: torch.Tensor) -> torch.Tensor:
        """[n, length, hidden] last-layer states -> [n, hidden] unit vectors (also used to embed retrieval sets)."""
        return F.normalize(torch.tanh(self.dense(hidden[:, 0])), dim=-1)

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> HeadOutput:
        vectors = self.embed(hidden).view(-1, 2, hidden.shape[-1])
        similarity = vectors[:, 0] @ vectors[:, 1].T * self.logit_scale
        loss = F.cross_entropy(similarity, torch.arange(similarity.shape[0], device=similarity.device))
        return HeadOutput(vectors, loss)

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[list[list[float]]]:
        """Per pair: [query vector, candidate vector]."""
        return logits.detach().float().tolist()
