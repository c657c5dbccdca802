"""Mewsli-X entity retrieval (XTREME-R, no training): each WikiNews mention, in the sentence around
it, retrieves its WikiData entity among the candidate set's descriptions; mAP@20 (one relevant
entity per mention, so it equals MRR@20). `text_format: plain` embeds the sentence and the raw
description; `xtreme_r` uses XTREME-R's baseline preprocessing (google-research/xtreme
third_party/utils_mewslix.py: `preprocess_mention` marks the mention in its sentence and prepends it,
`preprocess_entity_description` joins the description's sentences), as its dual encoder is trained. Files are the dataset's own JSONL (no public download
works offline: get-mewsli-x.sh of google-research/dense_representations_for_entity_retrieval)."""

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.eval.retrieval import mean_average_precision_at_k
from stilts.eval.search import knn
from stilts.tasks import register
from stilts.tasks.common.readers import jsonl_rows
from stilts.tasks.lareqa import K, pad_ranking, score_rankings, text_format
from stilts.tasks.common.retrieval_formats import read_rankings, render_rankings
from stilts.tasks.common.scoring import metric
from stilts.tasks.common.sources import find_files
from stilts.tasks.spec import NO_SETTINGS, Embed, TaskSpec

LANGUAGES = ("ar", "de", "en", "es", "fa", "ja", "pl", "ro", "ta", "tr", "uk")


_MARKED = re.compile(r"\{(.*?)\}")  # marker symbols already in a text are escaped to parentheses


def _one_line(text: str) -> str:
    """utils_mewslix's normalisation: newlines joined, double spaces halved, ends stripped."""
    return " ".join(text.splitlines()).replace("  ", " ").strip()


def marked_mention(text: str, sentence: tuple[int, int], mention: tuple[int, int]) -> str:
    """XTREME-R's query for a mention: "Smith: The verdict came back for { Smith }, who ..." (the
    mention prepended, then its sentence with the mention between markers)."""
    left = _MARKED.sub(r"(\1)", text[sentence[0]:mention[0]])
    right = _MARKED.sub(r"(\1)", text[mention[1]:sentence[1]])
    surface = text[mention[0]:mention[1]]
    return _one_line(f"{surface}: {left} {{ {surface} }} {right}")


def _bounds(span: Mapping[str, int] | Sequence[int]) -> tuple[int, int]:
    """A span as Mewsli-X's schema.py writes it ({"start", "end"}), or as a [start, end] pair."""
    return (span["start"], span["end"]) if isinstance(span, Mapping) else (span[0], span[1])


def entity_text(description: str, sentence_spans: Sequence[Mapping[str, int] | Sequence[int]]) -> str:
    """XTREME-R's text of an entity: its description's sentences joined by spaces."""
    return _one_line(" ".join(description[slice(*_bounds(span))] for span in sentence_spans))


def mention_sentence(spans: Sequence[Mapping[str, int] | Sequence[int]], start: int, end: int) -> tuple[int, int]:
    """The sentence span that holds the mention (the mention itself when no sentence does)."""
    return next((_bounds(span) for span in spans if _bounds(span)[0] <= start < _bounds(span)[1]), (start, end))


def _mentions(path: Path, language: str, xtreme_r: bool) -> list[tuple[str, str, str]]:
    """(example id, query text, gold entity id) of one language; the query is the sentence holding
    the mention (`plain`) or XTREME-R's marked mention."""
    mentions = []
    for number, row in jsonl_rows(path):
        context = row.get("context", {})
        if context.get("language") != language:
            continue
        text = context.get("text") or ""
        if not text:
            raise StiltsError(f"{path}:{number}: context.text is empty: run Mewsli-X's restore_text step "
                              "(get-mewsli-x.sh) to put the WikiNews article text back")
        for mention in row.get("mentions", []):
            span = mention["mention_span"]
            sentence = mention_sentence(context.get("sentence_spans", []), span["start"], span["end"])
            query = (marked_mention(text, sentence, (span["start"], span["end"])) if xtreme_r
                     else text[sentence[0]:sentence[1]])
            mentions.append((mention["example_id"], query, mention["entity_id"]))
    return mentions


def retrieve(embed: Embed, root: Path, languages: Sequence[str], split: str,
             settings: Mapping[str, Any] = NO_SETTINGS) -> dict[str, tuple[dict[str, float], str, str]]:
    mentions_file, candidates_file = find_files(MEWSLIX, split, languages[0], root)
    xtreme_r = text_format(settings, "mewslix") == "xtreme_r"
    entities = [(row["entity_id"], entity_text(row["description"], row["sentence_spans"]) if xtreme_r
                 else row["description"]) for _, row in jsonl_rows(candidates_file)]
    position = {entity_id: i for i, (entity_id, _) in enumerate(entities)}
    entity_vectors = embed([description for _, description in entities])
    results = {}
    for language in languages:
        mentions = _mentions(mentions_file, language, xtreme_r)
        missing = [entity for _, _, entity in mentions if entity not in position]
        if missing:
            raise StiltsError(f"{candidates_file}: gold entities {missing[:3]} of {mentions_file} are not candidates")
        _, ranking = knn(embed([text for _, text, _ in mentions]), entity_vectors, min(K, len(entities)))
        relevant = [{position[entity]} for _, _, entity in mentions]
        metrics = {"map@20": mean_average_precision_at_k(pad_ranking(ranking), relevant, K)}
        rankings = {example: [entities[i][0] for i in row] for (example, _, _), row in zip(mentions, ranking.tolist())}
        results[language] = (metrics, ".json", render_rankings(rankings))
    return results


MEWSLIX = register(TaskSpec(
    name="mewslix",
    description="Mewsli-X multilingual entity retrieval, 11 languages, no training",
    head="retrieval",
    domain="retrieval",
    reader=read_rankings,
    files={split: ((f"mewslix/wikinews_mentions-{split}.jsonl", "mewslix/candidate_set_entities.jsonl"),)
           for split in ("dev", "test")},
    languages=LANGUAGES,
    scorer=score_rankings,
    score_key=metric("map@20"),
    main_metrics=("map@20",),
    download_hint=("Run google-research/xtreme's download_mewslix (get-mewsli-x.sh) and put candidate_set_entities.jsonl "
                   "and wikinews_mentions-{dev,test}.jsonl in DIR/mewslix/."),
    retrieve=retrieve,
))
