"""MultiNLI: English 3-way natural language inference (intermediate task)."""

from functools import partial

from stilts.tasks import register
from stilts.tasks.common.readers import read_glue_tsv
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec

NLI_LABELS = ("contradiction", "entailment", "neutral")
_HUB_LABELS = ("entailment", "neutral", "contradiction")  # GLUE's class order on the Hub


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    return [
        {"id": str(row["idx"]), "text_a": row["premise"], "text_b": row["hypothesis"], "label": _HUB_LABELS[row["label"]]}
        for row in dataset
        if row["label"] >= 0
    ]


MNLI = register(TaskSpec(
    name="mnli",
    description="MultiNLI (sentence-pair classification, matched dev set)",
    head="classification",
    domain="nli",
    xstilts_pool=True,
    reader=partial(read_glue_tsv, labels=NLI_LABELS, text_a="sentence1", text_b="sentence2", label="gold_label"),
    files={"train": ("MNLI/train.tsv",), "dev": ("MNLI/dev_matched.tsv",)},
    languages=("en",),
    labels=NLI_LABELS,
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint="Get GLUE's MNLI folder (train.tsv, dev_matched.tsv) into DIR/MNLI/.",
    hub=(HubSource(path="nyu-mll/glue", name=lambda language: "mnli",
                  splits={"train": "train", "dev": "validation_matched"}, convert=hub_rows_to_examples),),
))
