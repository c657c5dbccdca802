"""XCOPA: causal commonsense reasoning (2-way multiple choice) in 11 languages (target, XTREME-R).

XTREME-R's recipe trains on English Social IQa, then on English COPA (conf/target/xcopa.yaml puts
`socialiqa` in the target's `before` stages), then predicts every XCOPA language."""

from stilts.tasks import register
from stilts.tasks.formats import copa_context, read_copa_jsonl
from stilts.tasks.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec

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
