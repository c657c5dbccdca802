"""CommonsenseQA: English commonsense questions, 5-way multiple choice (intermediate task)."""

from stilts.tasks import register
from stilts.tasks.formats import read_commonsenseqa_jsonl
from stilts.tasks.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    return [{"id": row["id"], "context": row["question"], "choices": list(row["choices"]["text"]),
             "label": list(row["choices"]["label"]).index(row["answerKey"])} for row in dataset if row["answerKey"]]


COMMONSENSEQA = register(TaskSpec(
    name="commonsenseqa",
    description="CommonsenseQA (multiple choice over 5 answers)",
    head="multiple_choice",
    domain="commonsense",
    xstilts_pool=True,
    reader=read_commonsenseqa_jsonl,
    files={"train": ("commonsenseqa/train_rand_split.jsonl",), "dev": ("commonsenseqa/dev_rand_split.jsonl",)},
    languages=("en",),
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint="Get train_rand_split.jsonl and dev_rand_split.jsonl (CommonsenseQA v1.11) into DIR/commonsenseqa/.",
    hub=(HubSource(path="tau/commonsense_qa", name=lambda language: None,
                   splits={"train": "train", "dev": "validation"}, convert=hub_rows_to_examples),),
))
