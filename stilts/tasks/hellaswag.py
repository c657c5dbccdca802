"""HellaSwag: English commonsense sentence completion, 4-way multiple choice (intermediate task)."""


from stilts.tasks import register
from stilts.tasks.formats import read_hellaswag_jsonl
from stilts.tasks.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    return [
        {"id": str(row["ind"]), "context": row["ctx"], "choices": list(row["endings"]), "label": int(row["label"])}
        for row in dataset
        if row["label"] != ""
    ]


HELLASWAG = register(TaskSpec(
    name="hellaswag",
    description="HellaSwag (multiple choice over 4 endings)",
    head="multiple_choice",
    domain="commonsense",
    xstilts_pool=True,
    reader=read_hellaswag_jsonl,
    files={"train": ("hellaswag/hellaswag_train.jsonl",), "dev": ("hellaswag/hellaswag_val.jsonl",)},
    languages=("en",),
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint="Get hellaswag_train.jsonl and hellaswag_val.jsonl from the HellaSwag release into DIR/hellaswag/.",
    hub=(HubSource(path="Rowan/hellaswag", name=lambda language: None,
                  splits={"train": "train", "dev": "validation"}, convert=hub_rows_to_examples),),
))
