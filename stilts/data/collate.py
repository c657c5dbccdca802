"""Dynamic padding: every batch is padded to its own longest sequence, never to max_length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from stilts.heads.base import IGNORE_INDEX

# The feature columns a batch carries (the others, e.g. QA offsets, stay with the evaluation set).
MODEL_INPUTS = ("input_ids", "attention_mask", "labels", "start_positions", "end_positions", "feature_index")


def _pad(rows: Sequence[Sequence[int]], length: int, value: int) -> list[list[int]]:
    return [list(row) + [value] * (length - len(row)) for row in rows]


class DynamicPaddingCollator:
    """Pads input_ids with the tokenizer's pad id, attention masks with 0 and token labels with the
    ignore index; multiple-choice features ([choices][tokens]) pad over every choice of the batch.
    With `task`, every batch names its task (the head that takes it) under "task"."""

    def __init__(self, pad_token_id: int, task: str | None = None) -> None:
        self.pad_token_id, self.task = pad_token_id, task

    def __call__(self, features: Sequence[dict[str, Any]], passes: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """`passes` (which pass over the data each feature comes from) matters to masking only."""
        choices = isinstance(features[0]["input_ids"][0], list)
        sequences = [seq for f in features for seq in (f["input_ids"] if choices else [f["input_ids"]])]
        length = max(len(seq) for seq in sequences)
        padding = {"input_ids": self.pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        batch = {}
        for key in features[0]:
            values = [f[key] for f in features]
            if key in padding and isinstance(values[0], list):
                if choices:
                    values = [_pad(rows, length, padding[key]) for rows in values]
                else:
                    values = _pad(values, length, padding[key])
            batch[key] = torch.tensor(values, dtype=torch.long)
        if self.task is not None:
            batch["task"] = self.task
        return batch


class MaskingCollator(DynamicPaddingCollator):
    """BERT's masked-LM recipe on dynamically padded batches: 15% of the real (non-special) tokens
    are predicted; of those 80% become <mask>, 10% a random token, 10% stay. The mask of a feature
    is a function of (seed, feature index, pass over the data) alone, so a resumed run masks exactly
    as the uninterrupted one (a collator drawing from one running generator could not be replayed);
    each pass masks anew (dynamic masking, as RoBERTa). `epoch` is the pass when none is given."""

    def __init__(self, pad_token_id: int, mask_token_id: int, vocab_size: int, special_ids: Sequence[int],
                 seed: int, probability: float = 0.15, task: str | None = None) -> None:
        super().__init__(pad_token_id, task)
        self.mask_token_id, self.vocab_size, self.seed, self.probability = mask_token_id, vocab_size, seed, probability
        self.special = np.array(sorted(set(special_ids)), dtype=np.int64)
        self.replacements = np.setdiff1d(np.arange(vocab_size), self.special)  # random tokens are never special
        self.epoch = 0

    def _mask(self, ids: list[int], feature_index: int, pass_: int) -> tuple[list[int], list[int]]:
        rng = np.random.default_rng([self.seed, feature_index, pass_])
        ids_array = np.array(ids, dtype=np.int64)
        candidates = ~np.isin(ids_array, self.special)
        chosen = candidates & (rng.random(len(ids)) < self.probability)
        if candidates.any() and not chosen.any():  # every sequence teaches something
            chosen[rng.choice(np.flatnonzero(candidates))] = True
        labels = np.where(chosen, ids_array, IGNORE_INDEX)
        roll = rng.random(len(ids))
        masked = chosen & (roll < 0.8)
        randomised = chosen & (roll >= 0.8) & (roll < 0.9)
        ids_array[masked] = self.mask_token_id
        ids_array[randomised] = rng.choice(self.replacements, size=int(randomised.sum()))
        return ids_array.tolist(), labels.tolist()

    def __call__(self, features: Sequence[dict[str, Any]], passes: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        passes = passes if passes is not None else [self.epoch] * len(features)
        masked = []
        for feature, pass_ in zip(features, passes):
            ids, labels = self._mask(feature["input_ids"], int(feature["feature_index"]), pass_)
            masked.append(dict(feature, input_ids=ids, labels=labels))
        return super().__call__(masked)
