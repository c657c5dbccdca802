"""Examples -> model features, one batched `datasets.map` function per head type.

Semantics follow the Hugging Face examples: QA windows with doc stride and offset mapping
(run_qa.py), labels on the first sub-word of each word (run_ner.py). No padding here: the
collator pads each batch to its own longest sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from stilts.errors import StiltsError
from stilts.model.heads import IGNORE_INDEX

Batch = Mapping[str, list[Any]]


@dataclass(frozen=True)
class FeaturizeSettings:
    max_length: int = 256
    doc_stride: int = 128  # QA: tokens shared by consecutive windows of a long context
    max_query_length: int = 64  # QA: longer questions are cut, as in XTREME

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "FeaturizeSettings":
        """The featurization settings among a task's tunables (its YAML node); the rest are ignored."""
        return cls(**{field.name: settings[field.name] for field in fields(cls) if field.name in settings})

    def check_qa_window(self) -> None:
        """Question (<= max_query_length) + 4 special tokens must leave more than doc_stride context tokens."""
        if self.doc_stride >= self.max_length - self.max_query_length - 4:
            raise StiltsError(
                f"doc_stride ({self.doc_stride}) must be smaller than max_length ({self.max_length}) minus "
                f"max_query_length ({self.max_query_length}) minus 4 special tokens; lower doc_stride or raise max_length"
            )


def classification(batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
    encoded = tokenizer(batch["text_a"], batch["text_b"], truncation=True, max_length=settings.max_length)
    return {
        "input_ids": encoded["input_ids"],
        "attention_mask": encoded["attention_mask"],
        "labels": [label_to_id[label] for label in batch["label"]],
        "example_index": batch["example_index"],
    }


def multiple_choice(batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
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


def tagging(batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
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


def _answer_tokens(offsets, sequence_ids, answers: Mapping[str, list]) -> tuple[int, int]:
    """Smallest token span covering the first gold answer (surrounding whitespace ignored) inside
    this window, or (0, 0) when the answer is not wholly inside it."""
    if not answers["text"]:
        return 0, 0
    text = answers["text"][0]
    start_char = answers["answer_start"][0] + len(text) - len(text.lstrip())
    end_char = answers["answer_start"][0] + len(text.rstrip())
    context = [i for i, s in enumerate(sequence_ids) if s == 1 and offsets[i][1] > offsets[i][0]]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    start = next(i for i in context if offsets[i][1] > start_char)
    end = next(i for i in reversed(context) if offsets[i][0] < end_char)
    return (start, end) if start <= end else (0, 0)


def _truncate_questions(questions: list[str], tokenizer, max_query_length: int) -> list[str]:
    """Cut questions to max_query_length tokens (XTREME/BERT's rule) so a window always has room for
    context. The cut is made in the text, at a token's end; a SentencePiece tokenizer may split the cut
    text into more pieces than its prefix had, so the cut moves back a token until it fits."""
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    cut = []
    for question, offsets in zip(questions, encoded["offset_mapping"]):
        keep = min(len(offsets), max_query_length)
        while len(offsets) > max_query_length and keep > 1:
            prefix = question[:offsets[keep - 1][1]]
            if len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) <= max_query_length:
                break
            keep -= 1
        cut.append(question if len(offsets) <= max_query_length else question[:offsets[keep - 1][1]])
    return cut


def span_qa(batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
    """Question + context windows (stride `doc_stride`); offsets kept for context tokens only."""
    questions = _truncate_questions([q.lstrip() for q in batch["question"]], tokenizer, settings.max_query_length)
    encoded = tokenizer(
        questions, batch["context"], truncation="only_second", max_length=settings.max_length,
        stride=settings.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    starts, ends, offsets_out, example_index = [], [], [], []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        sequence_ids = encoded.sequence_ids(i)
        example = encoded["overflow_to_sample_mapping"][i]
        start, end = _answer_tokens(offsets, sequence_ids, batch["answers"][example])
        starts.append(start)
        ends.append(end)
        offsets_out.append([list(o) if s == 1 else [-1, -1] for o, s in zip(offsets, sequence_ids)])
        example_index.append(batch["example_index"][example])
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "start_positions": starts, "end_positions": ends, "offsets": offsets_out, "example_index": example_index}


def dual_encoder(batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
    """Query (cut at max_query_length) and candidate (cut at max_length) as the two sequences of one
    feature, [2][tokens]; a candidate with a context is encoded as the pair (candidate, context), as
    XTREME-R encodes LAReQA answers (sentence, paragraph)."""
    queries = tokenizer(batch["query"], truncation=True, max_length=settings.max_query_length)
    contexts = batch["candidate_context"]
    if all(context is None for context in contexts):
        candidates = tokenizer(batch["candidate"], truncation=True, max_length=settings.max_length)
    elif any(context is None for context in contexts):
        raise StiltsError("dual-encoder examples must all have a candidate_context or none (one task, one encoding)")
    else:
        candidates = tokenizer(batch["candidate"], contexts, truncation="longest_first", max_length=settings.max_length)
    return {"input_ids": [list(pair) for pair in zip(queries["input_ids"], candidates["input_ids"])],
            "attention_mask": [list(pair) for pair in zip(queries["attention_mask"], candidates["attention_mask"])],
            "example_index": batch["example_index"]}


def mlm(batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
    """Token ids of each line (cut at max_length); the collator masks them anew on every pass."""
    encoded = tokenizer(batch["text"], truncation=True, max_length=settings.max_length)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "example_index": batch["example_index"]}


FEATURIZERS = {"classification": classification, "multiple_choice": multiple_choice, "tagging": tagging,
               "span_qa": span_qa, "mlm": mlm, "dual_encoder": dual_encoder}
MODEL_INPUTS = ("input_ids", "attention_mask", "labels", "start_positions", "end_positions", "feature_index")
