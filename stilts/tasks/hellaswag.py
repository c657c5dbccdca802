"""HellaSwag: English commonsense sentence completion, 4-way multiple choice (intermediate task)."""


from pathlib import Path

from stilts.errors import StiltsError
from stilts.tasks import register
from stilts.tasks.common.readers import choice_label, jsonl_rows
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.spec import Example, HubSource, TaskSpec


def read_hellaswag_jsonl(path: Path) -> list[Example]:
    """HellaSwag release jsonl: context `ctx`, four `endings`, integer `label`."""
    examples = []
    for number, row in jsonl_rows(path):
        endings = row.get("endings")
        if not isinstance(endings, list) or len(endings) < 2 or "ctx" not in row:
            raise StiltsError(f"{path}:{number}: a HellaSwag row needs 'ctx' and a list of 'endings'")
        examples.append({"id": str(row.get("ind", number)), "context": row["ctx"], "choices": endings,
                         "label": choice_label(row.get("label"), len(endings), f"{path}:{number}")})
    return examples


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
