"""Masked language modelling as an intermediate task (XLM-R's own LM head, masked anew every pass);
its dev predictions per line: masked tokens right, masked tokens, their summed negative log-likelihood."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stilts.heads.base import Batch, FeaturizeSettings, HeadType
from stilts.tasks.spec import Example, TaskSpec


class MaskedLanguageModelling(HeadType):
    name = "mlm"
    gold_field = None  # the masked tokens are their own gold
    starts_from_pretrained_lm = True
    masks_tokens = True

    def featurize(self, batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
        """Token ids of each line (cut at max_length); the collator masks them anew on every pass."""
        encoded = tokenizer(batch["text"], truncation=True, max_length=settings.max_length)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "example_index": batch["example_index"]}

    def render(self, spec: TaskSpec, examples: Sequence[Example], predictions: Sequence[Any]) -> tuple[str, str]:
        return ".tsv", "".join(f"{int(c)}\t{int(n)}\t{nll:.6f}\n" for c, n, nll in predictions)


HEAD = MaskedLanguageModelling()
