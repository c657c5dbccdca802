"""XCOPA: causal commonsense reasoning (2-way multiple choice) in 11 languages (target, XTREME-R).

XTREME-R's recipe trains on English Social IQa, then on English COPA (conf/target/xcopa.yaml puts
`socialiqa` in the target's `before` stages), then predicts every XCOPA language."""

from pathlib import Path

from stilts.errors import StiltsError
from stilts.tasks import register
from stilts.tasks.common.readers import choice_label, jsonl_rows, require_keys
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.spec import Example, HubSource, TaskSpec


def copa_context(premise: str, question: str) -> str:
    """XTREME-R's run_xcopa.py input: the premise, then the question in English for every language."""
    return f"{premise} What was the {question}?"

def read_copa_jsonl(path: Path) -> list[Example]:
    """(X)COPA jsonl: premise, choice1, choice2, question cause|effect, label 0/1. The context is
    "<premise> What was the <question>?" in English for every language, as XTREME-R's run_xcopa.py."""
    examples = []
    for number, row in jsonl_rows(path):
        where = f"{path}:{number}"
        require_keys(row, ("premise", "choice1", "choice2", "question"), where)
        if row["question"] not in ("cause", "effect"):
            raise StiltsError(f"{where}: question {row['question']!r} is neither 'cause' nor 'effect'")
        examples.append({"id": str(row.get("idx", number)),
                         "context": copa_context(row["premise"], row["question"]),
                         "choices": [row["choice1"], row["choice2"]], "label": choice_label(row.get("label"), 2, where)})
    return examples

LANGUAGES = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    return [{"id": str(row["idx"]), "context": copa_context(row["premise"], row["question"]),
             "choices": [row["choice1"], row["choice2"]], "label": int(row["label"])} for row in dataset]


XCOPA = register(TaskSpec(
    name="xcopa",
    description="XCOPA (2-way multiple choice, 11 languages; trained on SIQA then English COPA)",
    head="multiple_choice",
    domain="commonsense",
    reader=read_copa_jsonl,
    files={  # XTREME's download (dot or, in later versions, dash names), or XCOPA's own data/<lang>/ folders
        "train": ("xcopa/train.en.jsonl", "xcopa/train-en.jsonl"),
        "dev": ("xcopa/val.{lang}.jsonl", "xcopa/val-{lang}.jsonl", "xcopa/data/{lang}/val.{lang}.jsonl"),
        "test": ("xcopa/test.{lang}.jsonl", "xcopa/test-{lang}.jsonl", "xcopa/data/{lang}/test.{lang}.jsonl"),
    },
    languages=LANGUAGES,
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint="Run google-research/xtreme's scripts/download_data.sh and use its download/ folder as data.root.",
    hub=(HubSource(path="aps/super_glue", name=lambda language: "copa", splits={"train": "train", "dev": "validation"},
                   convert=hub_rows_to_examples, languages=("en",)),
         HubSource(path="cambridgeltl/xcopa", name=lambda language: language,
                   splits={"dev": "validation", "test": "test"}, convert=hub_rows_to_examples, languages=LANGUAGES)),
))
