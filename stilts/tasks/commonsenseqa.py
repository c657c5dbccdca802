"""CommonsenseQA: English commonsense questions, 5-way multiple choice (intermediate task)."""

from pathlib import Path

from stilts.errors import StiltsError
from stilts.tasks import register
from stilts.tasks.common.readers import jsonl_rows, require_keys
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.spec import Example, HubSource, TaskSpec


def read_commonsenseqa_jsonl(path: Path) -> list[Example]:
    """CommonsenseQA release jsonl: question.stem, question.choices[{label, text}], answerKey A-E."""
    examples = []
    for number, row in jsonl_rows(path):
        where = f"{path}:{number}"
        require_keys(row, ("id", "question"), where)
        question = row["question"]
        if not isinstance(question, dict) or "stem" not in question or not question.get("choices"):
            raise StiltsError(f"{where}: 'question' needs a 'stem' and 'choices'")
        if not all(isinstance(choice, dict) and {"label", "text"} <= choice.keys() for choice in question["choices"]):
            raise StiltsError(f"{where}: each of 'question.choices' needs a 'label' and a 'text'")
        keys = [choice["label"] for choice in question["choices"]]
        answer = row.get("answerKey")
        if answer not in (None, "") and answer not in keys:
            raise StiltsError(f"{where}: answerKey {answer!r} is not one of the choice labels {keys}")
        examples.append({"id": row["id"], "context": question["stem"],
                         "choices": [choice["text"] for choice in question["choices"]],
                         "label": keys.index(answer) if answer else None})
    return examples


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
