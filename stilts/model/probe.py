"""An encoder's view of probe sequences (`stilts.data.probe`), for transferability estimates: each
sequence's mean last-layer state over its real tokens (text embeddings, TextEmb), the feature of each
labelled row, and, for LEEP, a trained source head's distribution over its own labels at each row.

Batched inference without gradients, sequences ordered by length so padding stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stilts.errors import StiltsError
from stilts.heads.base import WHOLE_SEQUENCE, HeadType
from stilts.model.embeddings import DTYPES

POOLINGS = ("cls", "mean")


@dataclass
class ProbeOutput:
    text: np.ndarray  # [sequences, hidden]: mean last-layer state over each sequence's real tokens
    tokens: np.ndarray  # [sequences]: real tokens per sequence (weights of a token-level mean)
    features: np.ndarray  # [rows, hidden]
    probabilities: np.ndarray | None = None  # [rows, source labels] when a head was given


def leep_mismatch(head_type: HeadType, rows: np.ndarray) -> str | None:
    """Why a source head of `head_type` gives no distribution per row (`rows`: [n, 2] sequence index,
    position); None when it does."""
    kind = head_type.leep_rows
    if kind is None:
        return f"a {head_type.name} head has no distribution over labels per example"
    rows_kind = "sequence" if (rows[:, 1] == WHOLE_SEQUENCE).all() else "token"
    if kind != rows_kind:
        return f"a {head_type.name} head labels {kind}s, the target's rows are {rows_kind}s"
    return None


def _padded(sequences: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(ids) for ids in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for i, row in enumerate(sequences):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def probe_encoder(encoder, sequences: list[list[int]], rows: np.ndarray, pad_id: int, *, batch_size: int = 32,
                  pooling: str = "cls", dtype: str = "float32", device: str | None = None, head: torch.nn.Module | None = None,
                  head_type: HeadType | None = None) -> ProbeOutput:
    """Run `encoder` (moved to `device` and `dtype`, in eval mode) over every sequence. `rows` are
    [n, 2] (sequence index, position) pairs (`stilts.data.probe`); a whole-sequence row's feature is
    its first token's state (`cls`, what the classification and multiple-choice heads read) or its
    mean state; a token row's is that token's state."""
    if pooling not in POOLINGS:
        raise StiltsError(f"rank.pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    if head is not None and leep_mismatch(head_type, rows):
        raise ValueError(leep_mismatch(head_type, rows))
    target_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder = encoder.to(target_device, dtype=DTYPES[dtype]).eval()
    head = head.to(target_device).eval() if head is not None else None
    hidden_size = encoder.config.hidden_size
    text = np.empty((len(sequences), hidden_size), dtype=np.float32)
    tokens = np.array([len(ids) for ids in sequences], dtype=np.int64)
    features = np.empty((len(rows), hidden_size), dtype=np.float32)
    probabilities: np.ndarray | None = None
    by_sequence = np.argsort(rows[:, 0], kind="stable")
    bounds = np.searchsorted(rows[by_sequence, 0], np.arange(len(sequences) + 1))
    order = np.argsort(tokens, kind="stable")
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        ids, mask = _padded([sequences[i] for i in chosen], pad_id, target_device)
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).float()
        means = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        text[chosen] = means.cpu().numpy()
        per_sequence = [by_sequence[bounds[i]:bounds[i + 1]] for i in chosen]
        local = torch.tensor(np.repeat(np.arange(len(chosen)), [len(r) for r in per_sequence]), device=target_device)
        rows_here = np.concatenate(per_sequence)
        if not len(rows_here):
            continue
        positions = torch.tensor(rows[rows_here, 1], device=target_device)
        whole = positions == WHOLE_SEQUENCE
        token_states = hidden[local, positions.clamp(min=0)].float()
        pooled = (hidden[:, 0].float() if pooling == "cls" else means)[local]
        features[rows_here] = torch.where(whole.unsqueeze(-1), pooled, token_states).cpu().numpy()
        if head is not None:
            logits = head(hidden.to(next(head.parameters()).dtype), {}).logits.float()
            logits = logits[local] if head_type.leep_rows == "sequence" else logits[local, positions]
            if probabilities is None:
                probabilities = np.empty((len(rows), logits.shape[-1]), dtype=np.float64)
            probabilities[rows_here] = torch.softmax(logits.double(), dim=-1).cpu().numpy()
    return ProbeOutput(text, tokens, features, probabilities)
