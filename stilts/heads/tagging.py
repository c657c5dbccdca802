"""Token tagging (UD POS, PAN-X, CCG): a label on the first sub-word of each word; XTREME's prediction
file is one tag per line, a blank line between sentences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.heads.base import IGNORE_INDEX, Batch, FeaturizeSettings, HeadType, Metrics, read_lines
from stilts.tasks.spec import Example, TaskSpec


def _no_word_lost(tokenizer, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each word the tokenizer turns into nothing (XLM-R's normaliser deletes U+200B, U+FEFF, ...;
    an empty word) becomes the unknown token, as XTREME's utils_tag.py does, so that every gold word
    keeps a sub-word, a label and a prediction; otherwise every later tag of the sentence shifts."""
    probe = tokenizer([list(words) for words in sentences], is_split_into_words=True, add_special_tokens=False)
    fixed = []
    for i, words in enumerate(sentences):
        present = set(probe.word_ids(i))
        fixed.append([word if index in present else tokenizer.unk_token for index, word in enumerate(words)])
    return fixed


def _read_tag_sentences(spec: TaskSpec, pred: Path) -> list[tuple[int, list[str]]]:
    """Sentences of predicted tags with the PRED line each starts on; `token<TAB>tag` lines give their tag."""
    sentences: list[tuple[int, list[str]]] = []
    in_sentence = False
    for number, line in enumerate(read_lines(pred), start=1):
        if not line.strip():
            in_sentence = False
            continue
        tag = line.split("\t")[-1].strip()
        if spec.labels and tag not in spec.labels:
            raise StiltsError(f"{pred}:{number}: tag {tag!r} is not in the tag set {list(spec.labels)}")
        if in_sentence:
            sentences[-1][1].append(tag)
        else:
            sentences.append((number, [tag]))
            in_sentence = True
    return sentences


class Tagging(HeadType):
    name = "tagging"
    gold_field = "tags"
    row_labels = "each word's first sub-word, its tag"
    leep_rows = "token"

    def featurize(self, batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
        """Label the first sub-word of each word; later sub-words, specials and cut-off words are ignored."""
        encoded = tokenizer(_no_word_lost(tokenizer, batch["tokens"]), is_split_into_words=True, truncation=True,
                            max_length=settings.max_length)
        labels = []
        for i, tags in enumerate(batch["tags"]):
            row, previous = [], None
            for word in encoded.word_ids(i):
                row.append(label_to_id[tags[word]] if word is not None and word != previous else IGNORE_INDEX)
                previous = word
            labels.append(row)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": labels,
                "example_index": batch["example_index"]}

    def example_prediction(self, spec: TaskSpec, labels: Sequence[str], example: Example, prediction: Any) -> Any:
        """Tags per word; words cut off by max_length get the task's fallback label, so lengths always match gold."""
        predicted = [labels[label] for label in prediction]
        return predicted + [spec.fallback_label] * (len(example["tokens"]) - len(predicted))

    def render(self, spec: TaskSpec, examples: Sequence[Example], predictions: Sequence[Any]) -> tuple[str, str]:
        return ".tsv", "".join("".join(f"{tag}\n" for tag in tags) + "\n" for tags in predictions)

    def gold_values(self, examples: Sequence[Example]) -> list | None:
        if any(example["tags"] is None for example in examples):
            return None
        return [tag for example in examples for tag in example["tags"]]

    def with_stand_in_gold(self, spec: TaskSpec, examples: Sequence[Example]) -> list[Example]:
        stand_in = spec.fallback_label or spec.labels[0]
        return [example if example["tags"] is not None else {**example, "tags": [stand_in] * len(example["tokens"])}
                for example in examples]

    def score_file(self, spec: TaskSpec, gold: Path, pred: Path, language: str, **options: Any) -> Metrics:
        """PRED is XTREME's prediction file: one tag per line, a blank line between sentences."""
        examples = self.read_gold(spec, gold)
        sentences = _read_tag_sentences(spec, pred)
        for index, (example, (line, tags)) in enumerate(zip(examples, sentences), start=1):
            if len(tags) != len(example["tokens"]):
                raise StiltsError(
                    f"{pred}:{line}: sentence {index} has {len(tags)} tags but {len(example['tokens'])} tokens in {gold}")
        if len(sentences) > len(examples):
            line = sentences[len(examples)][0]
            raise StiltsError(f"{pred}:{line}: sentence {len(examples) + 1} is beyond the {len(examples)} in {gold}")
        if len(sentences) < len(examples):
            raise StiltsError(f"{pred}: ends after sentence {len(sentences)} but {gold} has {len(examples)}; "
                              f"sentence {len(sentences) + 1} is missing")
        return spec.scorer(examples, [tags for _, tags in sentences], language)

    def probe_rows(self, features: Mapping[str, list], index: int, sequences: list) -> list[tuple[int, int, int]]:
        sequences.append(features["input_ids"][index])
        return [(len(sequences) - 1, position, label) for position, label in enumerate(features["labels"][index])
                if label != IGNORE_INDEX]

    def module(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        from stilts.heads.networks import TaggingHead

        return TaggingHead(hidden_size, num_labels, dropout)


HEAD = Tagging()
