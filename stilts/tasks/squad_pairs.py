"""SQuAD v1.1 question -> answer-sentence pairs: the dual-encoder training task of XTREME-R's LAReQA
recipe (google-research/xtreme scripts/train_lareqa.sh, third_party/processors/squad_retrieval.py).

Each question is paired with the sentence of its paragraph that holds the first answer's start,
encoded with its paragraph as second segment (as LAReQA candidates are). XTREME breaks paragraphs
into sentences with LAReQA's rule-based sb_sed; stilts uses pysbd, a maintained rule-based
segmenter. A question whose answer start falls in no sentence is skipped, as XTREME does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import pysbd

from stilts.tasks import register
from stilts.tasks.common.readers import read_squad_json
from stilts.tasks.common.pair_ranking import score_pairs
from stilts.tasks.common.scoring import metric
from stilts.tasks.spec import Example, HubSource, TaskSpec
from stilts.tasks.squad import hub_rows_to_examples

log = logging.getLogger(__name__)


@cache
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def sentence_spans(paragraph: str) -> list[tuple[int, int]]:
    """Character spans of the paragraph's sentences, trailing whitespace excluded."""
    spans = []
    for piece in _segmenter().segment(paragraph):
        end = piece.start + len(piece.sent.rstrip())
        if end > piece.start:
            spans.append((piece.start, end))
    return spans


def pairs_from_squad(examples: Sequence[Example]) -> list[Example]:
    """Span-QA examples -> (question, answer sentence + paragraph) pairs; a candidate's id is its
    paragraph's digest and sentence number, so one sentence answering two questions is one candidate."""
    pairs, skipped, spans_of = [], 0, {}
    for example in examples:
        context = example["context"]
        if not example["answers"]["answer_start"]:
            skipped += 1
            continue
        if context not in spans_of:
            spans_of[context] = sentence_spans(context)
        start = example["answers"]["answer_start"][0]
        found = next(((s, span) for s, span in enumerate(spans_of[context]) if span[0] <= start < span[1]), None)
        if found is None:
            skipped += 1
            continue
        number, (begin, end) = found
        paragraph = hashlib.sha1(context.encode()).hexdigest()[:16]
        pairs.append({"id": example["id"], "query": example["question"], "candidate": context[begin:end],
                      "candidate_context": context, "candidate_id": f"{paragraph}:{number}"})
    if skipped:
        log.info("squad_pairs: skipped %d questions without an answer inside one sentence", skipped)
    return pairs


def read_squad_pairs(path: Path) -> list[Example]:
    return pairs_from_squad(read_squad_json(path))


SQUAD_PAIRS = register(TaskSpec(
    name="squad_pairs",
    description="SQuAD v1.1 question -> answer sentence pairs (dual encoder with in-batch negatives; LAReQA recipe)",
    head="dual_encoder",
    domain="retrieval",
    reader=read_squad_pairs,
    files={"train": ("squad/train-v1.1.json",), "dev": ("squad/dev-v1.1.json",)},
    languages=("en",),
    scorer=score_pairs,
    score_key=metric("map@20"),
    main_metrics=("map@20", "p@1"),
    download_hint="Get train-v1.1.json and dev-v1.1.json from the SQuAD v1.1 release into DIR/squad/.",
    hub=(HubSource(path="rajpurkar/squad", name=lambda language: None, splits={"train": "train", "dev": "validation"},
                   convert=lambda dataset, language: pairs_from_squad(hub_rows_to_examples(dataset, language))),),
))
