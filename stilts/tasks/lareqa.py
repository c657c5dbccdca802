"""LAReQA on XQuAD-R (retrieval target of XTREME-R): each question retrieves, from the sentences of
all 11 languages at once, the sentences that hold its answer; mAP@20.

`text_format` says how candidates are embedded: `plain` (the sentence alone, stilts' frozen-encoder
protocol) or `xtreme_r` (sentence and its paragraph as two segments, as XTREME-R's dual encoder is
trained and evaluated: google-research/xtreme third_party/utils_lareqa.py `set_encodings`)."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stilts.errors import StiltsError
from stilts.eval.retrieval import mean_average_precision_at_k
from stilts.eval.search import knn
from stilts.tasks import register
from stilts.tasks.common.readers import load_json
from stilts.tasks.common.retrieval_formats import read_rankings, render_rankings
from stilts.tasks.common.scoring import metric
from stilts.tasks.common.sources import find_files
from stilts.tasks.spec import NO_SETTINGS, Embed, TaskSpec

LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
K = 20


TEXT_FORMATS = ("plain", "xtreme_r")


def text_format(settings: Mapping[str, Any], task: str) -> str:
    """A retrieval target's `text_format` setting, checked."""
    value = settings.get("text_format", "plain")
    if value not in TEXT_FORMATS:
        raise StiltsError(f"target.text_format of {task} must be one of {', '.join(TEXT_FORMATS)}, not {value!r}")
    return value


def _read(path: Path, language: str, with_context: bool
          ) -> tuple[list[tuple[str, str]], list[tuple[str, str | tuple[str, str]]], dict[str, str]]:
    """(questions as (id, text), sentences as (candidate id, text or (text, paragraph)), question id ->
    answer's candidate id)."""
    questions, sentences, answer_of = [], [], {}
    for a, article in enumerate(load_json(path)["data"]):
        for p, paragraph in enumerate(article["paragraphs"]):
            breaks, context = paragraph["sentence_breaks"], paragraph["context"]
            for s, (start, end) in enumerate(breaks):
                text = context[start:end]
                sentences.append((f"{language}:{a}:{p}:{s}", (text, context) if with_context else text))
            for qa in paragraph["qas"]:
                questions.append((qa["id"], qa["question"]))
                start = qa["answers"][0]["answer_start"]
                s = next(i for i, (b, e) in enumerate(breaks) if b <= start < max(e, b + 1)) if breaks else 0
                answer_of[qa["id"]] = f"{language}:{a}:{p}:{s}"
    return questions, sentences, answer_of


def retrieve(embed: Embed, root: Path, languages: Sequence[str], split: str,
             settings: Mapping[str, Any] = NO_SETTINGS) -> dict[str, tuple[dict[str, float], str, str]]:
    """The candidate pool is every sentence of every requested language; a question's relevant
    candidates are its answer sentences in all of them (XQuAD-R is parallel)."""
    with_context = text_format(settings, "lareqa") == "xtreme_r"
    data = {language: _read(find_files(LAREQA, split, language, root)[0], language, with_context)
            for language in languages}
    pool = [candidate for language in languages for candidate in data[language][1]]
    pool_vectors = embed([text for _, text in pool])
    position = {candidate_id: i for i, (candidate_id, _) in enumerate(pool)}
    results = {}
    for language in languages:
        questions = data[language][0]
        relevant = [{position[data[other][2][qid]] for other in languages if qid in data[other][2]}
                    for qid, _ in questions]
        _, ranking = knn(embed([text for _, text in questions]), pool_vectors, min(K, len(pool)))
        metrics = {"map@20": mean_average_precision_at_k(pad_ranking(ranking), relevant, K)}
        rankings = {qid: [pool[i][0] for i in row] for (qid, _), row in zip(questions, ranking.tolist())}
        results[language] = (metrics, ".json", render_rankings(rankings))
    return results


def pad_ranking(ranking: np.ndarray) -> np.ndarray:
    """Rankings shorter than K (a pool of fewer than K candidates) padded with -1, never relevant."""
    return np.pad(ranking, ((0, 0), (0, max(0, K - ranking.shape[1]))), constant_values=-1)


def score_rankings(gold: dict[str, list[str]], predictions: dict[str, list[str]], language: str = "en") -> dict[str, float]:
    """`python -m stilts.score lareqa|mewslix GOLD PRED`: {query: [relevant ids]} vs {query: [ranked ids]}."""
    queries = list(gold)
    ids = {candidate: i for i, candidate in enumerate({c for q in queries for c in gold[q] + predictions.get(q, [])})}
    ranking = np.array([[ids[c] for c in predictions.get(q, [])[:K]] + [-1] * (K - len(predictions.get(q, [])[:K]))
                        for q in queries], dtype=np.int64)
    relevant = [{ids[c] for c in gold[q]} for q in queries]
    return {"map@20": mean_average_precision_at_k(ranking, relevant, K)}


LAREQA = register(TaskSpec(
    name="lareqa",
    description="LAReQA (XQuAD-R) language-agnostic answer retrieval, 11 languages, no training",
    head="retrieval",
    domain="retrieval",
    reader=read_rankings,
    files={"test": ("lareqa/xquad-r/{lang}.json", "lareqa_xquad_r/xquad-r/{lang}.json")},
    languages=LANGUAGES,
    scorer=score_rankings,
    score_key=metric("map@20"),
    main_metrics=("map@20",),
    download_hint="Put google-research-datasets/lareqa's xquad-r/<lang>.json files in DIR/lareqa/xquad-r/.",
    retrieve=retrieve,
))
