"""PAWS-X: paraphrase identification trained on English PAWS, evaluated zero-shot in 7 languages (target)."""

from functools import partial

from stilts.tasks import register
from stilts.tasks.common.readers import read_glue_tsv, read_pair_tsv, read_translated_pair_tsv
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec

LANGUAGES = ("en", "de", "es", "fr", "ja", "ko", "zh")
LABELS = ("0", "1")


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    return [{"id": str(row["id"]), "text_a": row["sentence1"], "text_b": row["sentence2"], "label": str(row["label"])}
            for row in dataset]


PAWSX = register(TaskSpec(
    name="pawsx",
    description="PAWS-X (sentence-pair paraphrase classification, 7 languages)",
    head="classification",
    domain="paraphrase",
    reader=partial(read_pair_tsv, labels=LABELS),
    files={  # train: XTREME's English PAWS, XTREME's translate-train, or the PAWS-X release's own translations
        "train": ("pawsx/train-{lang}.tsv", "xtreme_translations/PAWSX/translate-train/en-{lang}-translated.tsv",
                  "pawsx/x-final/{lang}/translated_train.tsv"),
        "dev": ("pawsx/dev-{lang}.tsv",), "test": ("pawsx/test-{lang}.tsv",)},
    file_readers=(("xtreme_translations/PAWSX/translate-train/*.tsv", partial(read_translated_pair_tsv, labels=LABELS)),
                  ("pawsx/x-final/*/translated_train.tsv",
                   partial(read_glue_tsv, labels=LABELS, text_a="sentence1", text_b="sentence2", label="label"))),
    languages=LANGUAGES,
    labels=LABELS,
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint="Run google-research/xtreme's scripts/download_data.sh and use its download/ folder as data.root.",
    hub=(HubSource(path="google-research-datasets/paws-x", name=lambda language: language,
                   splits={"train": "train", "dev": "validation", "test": "test"}, convert=hub_rows_to_examples),),
))
