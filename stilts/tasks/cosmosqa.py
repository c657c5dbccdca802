"""CosmosQA: English reading comprehension needing commonsense, 4-way multiple choice (intermediate task)."""

import csv
from pathlib import Path

from stilts.errors import StiltsError
from stilts.tasks import register
from stilts.tasks.common.readers import choice_label, require_keys
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.spec import Example, HubSource, TaskSpec


def read_cosmosqa_csv(path: Path) -> list[Example]:
    """CosmosQA release csv: id, context, question, answer0..answer3, label."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise StiltsError(f"{path}: not a readable CSV file ({error})") from None
    examples = []
    for number, row in enumerate(rows, start=2):
        where = f"{path}:{number}"
        require_keys(row, ("id", "context", "question", "answer0", "answer1", "answer2", "answer3"), where)
        choices = [row[f"answer{i}"] for i in range(4)]
        examples.append({"id": row["id"], "context": f"{row['context']} {row['question']}", "choices": choices,
                         "label": choice_label(row.get("label"), 4, where)})
    return examples


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
