"""Mewsli-X entity retrieval (XTREME-R, no training): each WikiNews mention, in the sentence around
it, retrieves its WikiData entity among the candidate set's descriptions; mAP@20 (one relevant
entity per mention, so it equals MRR@20). Files are the dataset's own JSONL (no public download
works offline: get-mewsli-x.sh of google-research/dense_representations_for_entity_retrieval)."""

from collections.abc import Sequence
from pathlib import Path

from stilts.errors import StiltsError
from stilts.eval.retrieval import knn, mean_average_precision_at_k
from stilts.tasks import register
from stilts.tasks.formats import jsonl_rows
from stilts.tasks.lareqa import K, pad_ranking, score_rankings
from stilts.tasks.retrieval_formats import read_rankings, render_rankings
from stilts.tasks.scoring import metric
from stilts.tasks.sources import find_files
from stilts.tasks.spec import Embed, TaskSpec

LANGUAGES = ("ar", "de", "en", "es", "fa", "ja", "pl", "ro", "ta", "tr", "uk")


def _mentions(path: Path, language: str) -> list[tuple[str, str, str]]:
    """(example id, query text = the sentence holding the mention, gold entity id) of one language."""
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
            sentence = next(((b, e) for b, e in context.get("sentence_spans", []) if b <= span["start"] < e),
                            (span["start"], span["end"]))
            mentions.append((mention["example_id"], text[sentence[0]:sentence[1]], mention["entity_id"]))
    return mentions


def retrieve(embed: Embed, root: Path, languages: Sequence[str], split: str) -> dict[str, tuple[dict[str, float], str, str]]:
    mentions_file, candidates_file = find_files(MEWSLIX, split, languages[0], root)
    entities = [(row["entity_id"], row["description"]) for _, row in jsonl_rows(candidates_file)]
    position = {entity_id: i for i, (entity_id, _) in enumerate(entities)}
    entity_vectors = embed([description for _, description in entities])
    results = {}
    for language in languages:
        mentions = _mentions(mentions_file, language)
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
