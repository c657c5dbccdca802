"""Quora Question Pairs (GLUE): English duplicate-question classification (intermediate task)."""

from functools import partial

from stilts.tasks import register
from stilts.tasks.common.readers import read_glue_tsv
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec

LABELS = ("0", "1")


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    return [{"id": str(row["idx"]), "text_a": row["question1"], "text_b": row["question2"], "label": str(row["label"])}
            for row in dataset if row["label"] >= 0]


QQP = register(TaskSpec(
    name="qqp",
    description="QQP (question-pair classification)",
    head="classification",
    domain="paraphrase",
    xstilts_pool=True,
    reader=partial(read_glue_tsv, labels=LABELS, text_a="question1", text_b="question2", label="is_duplicate"),
    files={"train": ("QQP/train.tsv",), "dev": ("QQP/dev.tsv",)},
    languages=("en",),
    labels=LABELS,
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint="Get GLUE's QQP folder (train.tsv, dev.tsv) into DIR/QQP/.",
    hub=(HubSource(path="nyu-mll/glue", name=lambda language: "qqp", splits={"train": "train", "dev": "validation"},
                   convert=hub_rows_to_examples),),
))
