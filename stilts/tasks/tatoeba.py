"""Tatoeba: find each sentence's translation among 1,000 English sentences (retrieval target, no
training). XTREME's direction (`accuracy`) queries with the English side; `accuracy_reverse` with
the other language."""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.eval.retrieval import tatoeba_accuracy
from stilts.eval.search import knn
from stilts.tasks import register
from stilts.tasks.common.retrieval_formats import read_indices, read_sentences
from stilts.tasks.common.scoring import metric
from stilts.tasks.common.sources import find_files
from stilts.tasks.spec import NO_SETTINGS, Embed, TaskSpec

log = logging.getLogger(__name__)
ISO3 = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
    "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
    "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn",
}
XTREME_R_ISO3 = {"az": "aze", "lt": "lit", "pl": "pol", "uk": "ukr", "ro": "ron"}


def retrieve(embed: Embed, root: Path, languages: Sequence[str], split: str,
             settings: Mapping[str, Any] = NO_SETTINGS) -> dict[str, tuple[dict[str, float], str, str]]:
    results = {}
    for language in languages:
        source_file, english_file = find_files(TATOEBA, split, language, root)
        source, english = read_sentences(source_file), read_sentences(english_file)
        if len(source) != len(english):
            raise StiltsError(f"{source_file} has {len(source)} lines but {english_file} has {len(english)}; "
                              "Tatoeba files are line-aligned")
        source_vectors, english_vectors = embed(source), embed(english)
        _, nearest = knn(english_vectors, source_vectors, 1)
        if english_file.name.endswith("-en.en"):  # XTREME's processed layout: English sorted, gold hidden
            log.warning("tatoeba %s: %s is XTREME's processed file, whose English side is sorted to hide the "
                        "alignment: predictions are written, accuracy needs LASER's tatoeba.%s-eng.* files",
                        language, english_file, TATOEBA.file_languages[language])
            metrics = {}
        else:
            metrics = {"accuracy": tatoeba_accuracy(source_vectors, english_vectors),
                       "accuracy_reverse": tatoeba_accuracy(english_vectors, source_vectors)}
        results[language] = (metrics, ".tsv", "".join(f"{index}\n" for index in nearest[:, 0].tolist()))
    return results


def score_indices(gold: Sequence[int], predictions: Sequence[int], language: str = "en") -> dict[str, float]:
    """`python -m stilts.score tatoeba GOLD PRED`: both files hold one index per line."""
    if len(gold) != len(predictions):
        raise StiltsError(f"{len(predictions)} predicted indices for {len(gold)} gold indices")
    return {"accuracy": 100.0 * sum(g == p for g, p in zip(gold, predictions)) / len(gold)}


TATOEBA = register(TaskSpec(
    name="tatoeba",
    description="Tatoeba sentence retrieval (36 languages; XTREME-R's 5 more selectable), no training",
    head="retrieval",
    domain="retrieval",
    reader=read_indices,
    files={"test": (("tatoeba/tatoeba.{code}-eng.{code}", "tatoeba/tatoeba.{code}-eng.eng"),
                    ("tatoeba/v1/tatoeba.{code}-eng.{code}", "tatoeba/v1/tatoeba.{code}-eng.eng"),
                    ("tatoeba/{lang}-en.{lang}", "tatoeba/{lang}-en.en"))},
    languages=tuple(ISO3),
    extra_languages=tuple(XTREME_R_ISO3),
    file_languages=ISO3 | XTREME_R_ISO3,
    scorer=score_indices,
    score_key=metric("accuracy"),
    main_metrics=("accuracy", "accuracy_reverse"),
    download_hint=("Put LASER's data/tatoeba/v1 files (tatoeba.<xxx>-eng.<xxx> and .eng, line-aligned) in DIR/tatoeba/; "
                   "XTREME's processed tatoeba/<xx>-en.* files are read too, but sort the English side, hiding the gold."),
    retrieve=retrieve,
))
