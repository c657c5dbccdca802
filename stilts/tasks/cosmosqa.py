"""CosmosQA: English reading comprehension needing commonsense, 4-way multiple choice (intermediate task)."""

from stilts.tasks import register
from stilts.tasks.formats import read_cosmosqa_csv
from stilts.tasks.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    """Rows of the pinned parquet copy; ids are row numbers (the copy at that commit never reorders)."""
    return [{"id": f"cosmosqa-{i}", "context": f"{row['context']} {row['question']}",
             "choices": [row[f"answer{j}"] for j in range(4)], "label": int(row["label"])}
            for i, row in enumerate(dataset)]


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
    # allenai/cosmos_qa holds only a loading script, which `datasets` >= 4 refuses: a parquet copy, pinned.
    hub=(HubSource(path="Samsoup/cosmos_qa", name=lambda language: None, splits={"train": "train", "dev": "validation"},
                   convert=hub_rows_to_examples, revision="5511553160809abc4f9c11d12421ec0a9681ee75"),),
))
