"""Sentence embeddings from one hidden layer of the encoder, for the retrieval targets (no training).

Batched inference without gradients, sentences tokenised once and sorted by length so padding stays
small, mean pooling over real tokens (or the first token), L2-normalised so cosine similarity is a
dot product. The layers above the one embedded are dropped, so embedding at layer 14 of 24 costs 14
layers, with the same vectors as the full model's hidden state 14.
A trained dual encoder embeds with its own pooler instead (`pooler`, on the chosen layer's states).
Inputs are texts or (text, second segment) pairs, as LAReQA's (sentence, paragraph) candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from stilts.errors import StiltsError

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class EmbeddingSettings:
    layer: int  # 0 = embeddings output, n = n-th transformer layer
    pooling: str = "mean"  # "mean" over real tokens, or "cls" (first token)
    batch_size: int = 64
    max_length: int = 128
    dtype: str = "float32"  # bfloat16/float16 on GPU halve memory and time


def _keep_layers(encoder, layer: int) -> bool:
    """Drop the transformer layers above `layer` from a BERT/XLM-R-style encoder (`encoder.encoder.layer`),
    in place: the embedder owns the encoder it is given (it also moves it to its device and dtype).
    False for an architecture without that layer list, which then runs whole."""
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(stack, torch.nn.ModuleList):
        return False
    if layer < len(stack):
        encoder.encoder.layer = torch.nn.ModuleList(list(stack)[:layer])
        encoder.config.num_hidden_layers = layer
    return True


class SentenceEmbedder:
    """Callable: list of texts -> float32 array [n, hidden], each row of unit length."""

    def __init__(self, encoder, tokenizer, settings: EmbeddingSettings, device: str | None = None,
                 pooler: Callable[[torch.Tensor], torch.Tensor] | torch.nn.Module | None = None) -> None:
        """`pooler` maps [batch, length, hidden] states to unit vectors (a dual-encoder head's `embed`)."""
        layers = encoder.config.num_hidden_layers
        if not 0 <= settings.layer <= layers:
            raise StiltsError(f"embedding layer {settings.layer} does not exist: the encoder has layers 0..{layers}; "
                              "set target.layer (or model.retrieval_layer)")
        if settings.pooling not in ("mean", "cls"):
            raise StiltsError(f"target.pooling must be 'mean' or 'cls', not {settings.pooling!r}")
        if settings.dtype not in DTYPES:
            raise StiltsError(f"target.dtype must be one of {sorted(DTYPES)}, not {settings.dtype!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cut = _keep_layers(encoder, settings.layer)
        self.encoder = encoder.to(self.device, dtype=DTYPES[settings.dtype]).eval()
        self.tokenizer, self.settings = tokenizer, settings
        self.pooler = pooler.to(self.device).eval() if isinstance(pooler, torch.nn.Module) else pooler

    def _encode(self, texts: Sequence[str | tuple[str, str]]) -> list[list[int]]:
        """Token ids of texts, or of (text, second segment) pairs as one two-segment sequence each."""
        if texts and isinstance(texts[0], tuple):
            encoded = self.tokenizer([a for a, _ in texts], [b for _, b in texts], truncation="longest_first",
                                     max_length=self.settings.max_length)
        else:
            encoded = self.tokenizer(list(texts), truncation=True, max_length=self.settings.max_length)
        return encoded["input_ids"]

    def _batch(self, rows: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        """Right-padded input ids and attention mask of one batch."""
        length = max(len(ids) for ids in rows)
        ids = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, :len(row)] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    def _hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.cut:  # the cut encoder's last state is the chosen layer's
            return self.encoder(**batch).last_hidden_state.float()
        return self.encoder(**batch, output_hidden_states=True).hidden_states[self.settings.layer].float()

    @torch.no_grad()
    def __call__(self, texts: Sequence[str | tuple[str, str]]) -> np.ndarray:
        token_ids = self._encode(texts)
        order = np.argsort([len(ids) for ids in token_ids], kind="stable")
        output = np.empty((len(texts), self.encoder.config.hidden_size), dtype=np.float32)
        for start in range(0, len(texts), self.settings.batch_size):
            rows = order[start:start + self.settings.batch_size]
            batch = self._batch([token_ids[i] for i in rows])
            hidden = self._hidden(batch)
            if self.pooler is not None:
                output[rows] = self.pooler(hidden).float().cpu().numpy()
                continue
            if self.settings.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            output[rows] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return output
