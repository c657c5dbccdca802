"""XNLI: NLI trained on English MultiNLI, evaluated zero-shot in 15 languages (target task)."""

from functools import partial

from stilts.tasks import register
from stilts.tasks.common.readers import read_pair_tsv, read_translated_pair_tsv
from stilts.tasks.mnli import NLI_LABELS
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec

LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
_HUB_LABELS = ("entailment", "neutral", "contradiction")


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    return [
        {"id": f"{language}-{i}", "text_a": row["premise"], "text_b": row["hypothesis"], "label": _HUB_LABELS[row["label"]]}
        for i, row in enumerate(dataset)
    ]


XNLI = register(TaskSpec(
    name="xnli",
    description="XNLI (sentence-pair classification, 15 languages)",
    head="classification",
    domain="nli",
    reader=partial(read_pair_tsv, labels=NLI_LABELS),
    # train: XTREME's English MNLI, then XTREME's translate-train (gs://xtreme_translations/XNLI, copied as is)
    files={"train": ("xnli/train-{lang}.tsv", "xtreme_translations/XNLI/translate-train/en-{lang}-translated.tsv"),
           "dev": ("xnli/dev-{lang}.tsv",), "test": ("xnli/test-{lang}.tsv",)},
    file_readers=(("xtreme_translations/XNLI/translate-train/*.tsv",
                   partial(read_translated_pair_tsv, labels=NLI_LABELS, renamed={"contradictory": "contradiction"})),),
    languages=LANGUAGES,
    labels=NLI_LABELS,
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint="Run google-research/xtreme's scripts/download_data.sh and use its download/ folder as data.root.",
    hub=(HubSource(path="facebook/xnli", name=lambda language: language,
                  splits={"train": "train", "dev": "validation", "test": "test"}, convert=hub_rows_to_examples),),
))
