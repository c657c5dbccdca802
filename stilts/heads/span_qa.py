"""Extractive span QA (SQuAD v2, XQuAD, MLQA, TyDiQA-GoldP): question + context windows with a doc
stride (run_qa.py), start/end logits, the best valid span over all windows of a question (SQuAD v2:
the empty answer when the null score wins); the official `{question_id: answer}` JSON."""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.eval.qa import Answer
from stilts.heads.base import Batch, FeaturizeSettings, HeadType, Metrics
from stilts.tasks.common.readers import load_json, qa_has_gold
from stilts.tasks.common.sources import read_file
from stilts.tasks.spec import Example, TaskSpec


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


def decode_span_qa(examples: Sequence[Example], example_index: Sequence[int], offsets: Sequence[Sequence[Sequence[int]]],
                   predictions: Mapping[int, Mapping[str, Any]], allow_no_answer: bool,
                   max_answer_length: int = 30) -> list[str]:
    """Best-scoring valid span over all windows of each question (run_qa.py's post-processing);
    with unanswerable questions, the empty answer wins when the null score is higher, and each
    answer carries those odds (an `Answer`, for SQuAD v2's best-threshold scores)."""
    windows: dict[int, list[int]] = defaultdict(list)
    for feature, example in enumerate(example_index):
        windows[example].append(feature)
    answers = []
    for i, example in enumerate(examples):
        best_score, best_text, null_score = float("-inf"), "", float("inf")
        for feature in windows[i]:
            prediction, feature_offsets = predictions[feature], offsets[feature]
            null_score = min(null_score, prediction["null_score"])
            for start, start_logit in zip(prediction["start_index"], prediction["start_logit"]):
                for end, end_logit in zip(prediction["end_index"], prediction["end_logit"]):
                    if (start >= len(feature_offsets) or end >= len(feature_offsets) or feature_offsets[start][0] < 0
                            or feature_offsets[end][0] < 0 or end < start or end - start + 1 > max_answer_length):
                        continue
                    if start_logit + end_logit > best_score:
                        best_score = start_logit + end_logit
                        best_text = example["context"][feature_offsets[start][0]:feature_offsets[end][1]]
        if allow_no_answer:
            odds = null_score - best_score
            answers.append(Answer("" if odds > 0 else best_text, odds))
        else:
            answers.append(best_text)
    return answers


def _with_null_odds(answers: list[str | None], ids: list[str], na_prob_file: Path) -> list[Answer | str | None]:
    """SQuAD v2's `--na-prob-file` ({question_id: no-answer odds}) attached to the answers."""
    odds = load_json(na_prob_file)
    if not isinstance(odds, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in odds.values()):
        raise StiltsError(f"{na_prob_file}: expected a JSON object {{question_id: no-answer odds}} with numbers")
    absent = [qid for qid in ids if qid not in odds]
    if absent:
        raise StiltsError(f"{na_prob_file}: {len(absent)} questions have no odds (first: {', '.join(absent[:3])})")
    return [Answer(answer or "", odds[qid]) for qid, answer in zip(ids, answers)]


class SpanQA(HeadType):
    name = "span_qa"
    gold_field = "answers"
    row_labels = "context tokens of windows that hold the answer, 1 inside it"
    decode_columns = ("example_index", "offsets")

    def check_settings(self, settings: FeaturizeSettings) -> None:
        settings.check_qa_window()

    def featurize(self, batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
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

    def decode(self, spec: TaskSpec, labels: Sequence[str], examples: Sequence[Example],
               columns: Mapping[str, list], predictions: Mapping[int, Any]) -> list[Any]:
        return decode_span_qa(examples, columns["example_index"], columns["offsets"], predictions, spec.allow_no_answer)

    def render(self, spec: TaskSpec, examples: Sequence[Example], predictions: Sequence[Any]) -> tuple[str, str]:
        answers = {example["id"]: answer for example, answer in zip(examples, predictions)}
        return ".json", json.dumps(answers, ensure_ascii=False, indent=1) + "\n"

    def missing_gold(self, spec: TaskSpec, examples: Sequence[Example]) -> str | None:
        return None if qa_has_gold(examples) else "no gold answers (every question's answer is empty)"

    def score_file(self, spec: TaskSpec, gold: Path, pred: Path, language: str, **options: Any) -> Metrics:
        """PRED is the official `{question_id: answer_text}` JSON; gold decides which questions count.
        With `na_prob_file` (SQuAD v2) the best-threshold scores are added, as the official script does."""
        examples = read_file(spec, gold)
        if not qa_has_gold(examples):
            raise StiltsError(f"{gold}: has no gold answers (XTREME strips them from test files)")
        if len({example["id"] for example in examples}) != len(examples):
            raise StiltsError(f"{gold}: question ids repeat, so predictions could not be told apart")
        predictions = load_json(pred)
        if not isinstance(predictions, dict) or not all(isinstance(text, str) for text in predictions.values()):
            raise StiltsError(f"{pred}: expected a JSON object {{question_id: answer_text}} with string answers")
        ids = {example["id"] for example in examples}
        extra = [qid for qid in predictions if qid not in ids]
        if extra:
            warnings.warn(f"{len(extra)} predictions have ids not in {gold}; ignored (first: {', '.join(extra[:3])})")
        # A question without a prediction scores 0 (in the totals); the eval layer warns with the count.
        answers = [predictions.get(example["id"]) for example in examples]
        if options.get("na_prob_file") is not None:
            answers = _with_null_odds(answers, [example["id"] for example in examples], options["na_prob_file"])
        return spec.scorer(examples, answers, language)

    def probe_rows(self, features: Mapping[str, list], index: int, sequences: list) -> list[tuple[int, int, int]]:
        sequences.append(features["input_ids"][index])
        start, end = features["start_positions"][index], features["end_positions"][index]
        if start == 0:  # the answer is not in this window (or there is none)
            return []
        return [(len(sequences) - 1, position, int(start <= position <= end))
                for position, offset in enumerate(features["offsets"][index]) if offset[0] >= 0]  # context tokens

    def module(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        from stilts.heads.networks import SpanQAHead

        return SpanQAHead(hidden_size)


HEAD = SpanQA()
