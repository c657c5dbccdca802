"""Multiple choice (HellaSwag, CosmosQA, CommonsenseQA, SocialIQA, XCOPA): one (context, choice)
sequence per choice scored side by side, softmax over the choices; one choice index per line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stilts.errors import DataMalformed, StiltsError
from stilts.heads.base import WHOLE_SEQUENCE, Batch, FeaturizeSettings, HeadType, Metrics, check_count, read_lines
from stilts.tasks.spec import Example, TaskSpec


class MultipleChoice(HeadType):
    name = "multiple_choice"
    row_labels = "each (context, choice) sequence, 1 for the right choice"

    def check_examples(self, spec: TaskSpec, where: str, examples: Sequence[Example]) -> None:
        """One multiple-choice set has one number of choices (the head scores them side by side)."""
        first = examples[0]
        odd = next((e for e in examples if len(e["choices"]) != len(first["choices"])), None)
        if odd is not None:
            raise DataMalformed(f"{where}: example {odd['id']} has {len(odd['choices'])} choices where the others have "
                                f"{len(first['choices'])}")

    def featurize(self, batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
        """One (context, choice) sequence per choice; the collator stacks them as [batch, choices, length]."""
        sizes = [len(choices) for choices in batch["choices"]]
        contexts = [context for context, size in zip(batch["context"], sizes) for _ in range(size)]
        endings = [choice for choices in batch["choices"] for choice in choices]
        encoded = tokenizer(contexts, endings, truncation=True, max_length=settings.max_length)
        input_ids, attention_mask, start = [], [], 0
        for size in sizes:
            input_ids.append(encoded["input_ids"][start:start + size])
            attention_mask.append(encoded["attention_mask"][start:start + size])
            start += size
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": batch["label"],
                "example_index": batch["example_index"]}

    def with_stand_in_gold(self, spec: TaskSpec, examples: Sequence[Example]) -> list[Example]:
        return [example if example["label"] is not None else {**example, "label": 0} for example in examples]

    def score_file(self, spec: TaskSpec, gold: Path, pred: Path, language: str, **options: Any) -> Metrics:
        """PRED holds one integer choice index per line, in gold order."""
        examples = self.read_gold(spec, gold)
        lines = read_lines(pred)
        check_count(gold, len(examples), pred, len(lines))
        choices = []
        for number, (example, line) in enumerate(zip(examples, lines), start=1):
            try:
                choice = int(line)
            except ValueError:
                raise StiltsError(f"{pred}:{number}: expected an integer choice index, found {line!r}") from None
            if not 0 <= choice < len(example["choices"]):
                raise StiltsError(f"{pred}:{number}: choice {choice} is outside 0..{len(example['choices']) - 1}")
            choices.append(choice)
        return spec.scorer(examples, choices, language)

    def probe_rows(self, features: Mapping[str, list], index: int, sequences: list) -> list[tuple[int, int, int]]:
        rows = []
        for choice, choice_ids in enumerate(features["input_ids"][index]):
            rows.append((len(sequences), WHOLE_SEQUENCE, int(choice == features["labels"][index])))
            sequences.append(choice_ids)
        return rows

    def module(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        from stilts.heads.networks import MultipleChoiceHead

        return MultipleChoiceHead(hidden_size, dropout)


HEAD = MultipleChoice()
