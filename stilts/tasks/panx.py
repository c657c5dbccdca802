"""PAN-X (WikiANN) NER: trained on English, evaluated zero-shot in XTREME's 40 languages (target)."""

from functools import partial

from stilts.tasks import register
from stilts.tasks.common.readers import read_token_tsv
from stilts.tasks.common.scoring import metric, score_tags
from stilts.tasks.spec import HubSource, TaskSpec

LANGUAGES = ("ar", "he", "vi", "id", "jv", "ms", "tl", "eu", "ml", "ta", "te", "af", "nl", "en", "de", "el", "bn",
             "hi", "mr", "ur", "fa", "fr", "it", "pt", "es", "bg", "ru", "ja", "ka", "ko", "th", "sw", "yo", "my",
             "zh", "kk", "tr", "et", "fi", "hu")
XTREME_R_ADDITIONS = ("qu", "pl", "uk", "az", "lt", "pa", "gu", "ro")
LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    names = dataset.features["ner_tags"].feature.names
    return [{"id": f"{language}-{i}", "tokens": list(row["tokens"]), "tags": [names[t] for t in row["ner_tags"]]}
            for i, row in enumerate(dataset)]


PANX = register(TaskSpec(
    name="panx",
    description="PAN-X / WikiANN NER (IOB2 tagging, 40 languages; XTREME-R's 8 more selectable)",
    head="tagging",
    domain="entities",
    reader=partial(read_token_tsv, labels=LABELS),
    files={split: (f"panx/{split}-{{lang}}.tsv",) for split in ("train", "dev", "test")},
    languages=LANGUAGES,
    extra_languages=XTREME_R_ADDITIONS,
    labels=LABELS,
    scorer=score_tags,
    score_key=metric("f1"),
    main_metrics=("f1",),
    fallback_label="O",
    download_hint=("Download AmazonPhotos.zip (WikiANN, Rahimi et al.) as google-research/xtreme's README explains, "
                   "run its scripts/download_data.sh, and use its download/ folder as data.root."),
    hub=(HubSource(path="unimelb-nlp/wikiann", name=lambda language: language,
                   splits={"train": "train", "dev": "validation", "test": "test"}, convert=hub_rows_to_examples),),
))
