"""CosmosQA: English reading comprehension needing commonsense, 4-way multiple choice (intermediate task)."""

from stilts.tasks import register
from stilts.tasks.formats import read_cosmosqa_csv
from stilts.tasks.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    return [{"id": row["id"], "context": f"{row['context']} {row['question']}",
             "choices": [row[f"answer{i}"] for i in range(4)], "label": int(row["label"])} for row in dataset]


COSMOSQA = register(TaskSpec(
    name="cosmosqa",
    description="CosmosQA (multiple choice over 4 answers)",
    head="multiple_choice",
    domain="commonsense",
    xstilts_pool=True,
    reader=read_cosmosqa_csv,
    files={"train": ("cosmosqa/train.csv",), "dev": ("cosmosqa/valid.csv",)},
    languages=("en",),
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint="Get train.csv and valid.csv from the CosmosQA release into DIR/cosmosqa/.",
    hub=(HubSource(path="allenai/cosmos_qa", name=lambda language: None, splits={"train": "train", "dev": "validation"},
                   convert=hub_rows_to_examples),),
))
