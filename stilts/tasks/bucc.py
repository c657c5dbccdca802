"""BUCC 2018 bitext mining (retrieval target, no training): ratio-margin candidates (k=4, both
directions), the threshold that maximises F1 on the dev gold pairs, applied to the test sentences."""

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.eval.retrieval import bucc_candidates, bucc_extract, bucc_scores, bucc_threshold
from stilts.tasks import register
from stilts.tasks.common.retrieval_formats import read_id_pairs, read_id_sentences
from stilts.tasks.common.scoring import metric
from stilts.tasks.common.sources import find_files
from stilts.tasks.spec import NO_SETTINGS, Embed, TaskSpec

LANGUAGES = ("de", "fr", "ru", "zh")


def _mine(embed: Embed, root: Path, split: str, language: str) -> list[tuple[str, str, float]]:
    """Candidates as id pairs. As XTREME, each distinct sentence is embedded once and a sentence whose
    text repeats in its file is left out of the id pairs (its id is ambiguous)."""
    source_file, english_file = find_files(BUCC, split, language, root)[:2]
    sides = []
    for path in (source_file, english_file):
        ids, sentences = read_id_sentences(path)
        counts = Counter(sentence.strip() for sentence in sentences)
        texts = list(dict.fromkeys(sentences))
        id_of = {sentence: id_ for id_, sentence in zip(ids, sentences) if counts[sentence.strip()] == 1}
        sides.append((texts, [id_of.get(text) for text in texts]))
    (source_texts, source_ids), (english_texts, english_ids) = sides
    candidates = bucc_candidates(embed(source_texts), embed(english_texts))
    return [(source_ids[i], english_ids[j], score) for i, j, score in candidates
            if source_ids[i] is not None and english_ids[j] is not None]


def _gold(root: Path, split: str, language: str) -> set[tuple[str, str]] | None:
    files = find_files(BUCC, split, language, root)
    return read_id_pairs(files[2]) if len(files) == 3 else None


def retrieve(embed: Embed, root: Path, languages: Sequence[str], split: str,
             settings: Mapping[str, Any] = NO_SETTINGS) -> dict[str, tuple[dict[str, float], str, str]]:
    """Per language: the dev-tuned threshold, the mined pairs of `split` (written as the predictions)
    and their F1/precision/recall when `split` has gold pairs (XTREME's download keeps only dev gold)."""
    results = {}
    for language in languages:
        dev_gold = _gold(root, "dev", language)
        if not dev_gold:
            raise StiltsError(f"bucc: no dev gold pairs for {language!r} under {root / 'bucc2018'} "
                              f"({language}-en.dev.gold); the mining threshold is tuned on them")
        threshold = bucc_threshold(_mine(embed, root, "dev", language), dev_gold)
        mined = _mine(embed, root, split, language)
        pairs = bucc_extract(mined, threshold)
        gold = _gold(root, split, language)
        metrics = dict(bucc_scores(pairs, gold)) if gold is not None else {}
        metrics["threshold"] = threshold
        results[language] = (metrics, ".tsv", "".join(f"{s}\t{e}\n" for s, e in sorted(pairs)))
    return results


def score_pairs(gold: set, predictions: set, language: str = "en") -> dict[str, float]:
    """`python -m stilts.score bucc GOLD PRED`: both files hold `source_id<TAB>english_id` lines."""
    return bucc_scores(set(predictions), set(gold))


BUCC = register(TaskSpec(
    name="bucc",
    description="BUCC 2018 bitext mining (de fr ru zh to English), no training",
    head="retrieval",
    domain="retrieval",
    reader=read_id_pairs,
    files={split: ((f"bucc2018/{{lang}}-en.{split}.{{lang}}", f"bucc2018/{{lang}}-en.{split}.en",
                    f"bucc2018/{{lang}}-en.{split}.gold"),
                   (f"bucc2018/{{lang}}-en.{split}.{{lang}}", f"bucc2018/{{lang}}-en.{split}.en"))
           for split in ("dev", "test")},
    languages=LANGUAGES,
    scorer=score_pairs,
    score_key=metric("f1"),
    main_metrics=("f1", "precision", "recall"),
    download_hint=("Run google-research/xtreme's scripts/download_data.sh (bucc2018/: the sample release is dev, "
                   "the training release is test) and use its download/ folder as data.root."),
    retrieve=retrieve,
    tuned_on=("dev",),  # the mining threshold
))
