"""Sentence embeddings from one hidden layer of the encoder, for the retrieval targets (no training).

Batched inference without gradients, sentences sorted by length so padding stays small, mean
pooling over real tokens (or the first token), L2-normalised so cosine similarity is a dot product.
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
        self.encoder = encoder.to(self.device, dtype=DTYPES[settings.dtype]).eval()
        self.tokenizer, self.settings = tokenizer, settings
        self.pooler = pooler.to(self.device).eval() if isinstance(pooler, torch.nn.Module) else pooler

    def _encode(self, texts: Sequence[str | tuple[str, str]], **kwargs):
        """Tokenise texts, or (text, second segment) pairs as one two-segment sequence each."""
        if texts and isinstance(texts[0], tuple):
            return self.tokenizer([a for a, _ in texts], [b for _, b in texts], truncation="longest_first",
                                  max_length=self.settings.max_length, **kwargs)
        return self.tokenizer(list(texts), truncation=True, max_length=self.settings.max_length, **kwargs)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str | tuple[str, str]]) -> np.ndarray:
        lengths = [len(ids) for ids in self._encode(texts)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        output = np.empty((len(texts), self.encoder.config.hidden_size), dtype=np.float32)
        for start in range(0, len(texts), self.settings.batch_size):
            rows = order[start:start + self.settings.batch_size]
            batch = self._encode([texts[i] for i in rows], padding=True, return_tensors="pt").to(self.device)
            hidden = self.encoder(**batch, output_hidden_states=True).hidden_states[self.settings.layer].float()
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
