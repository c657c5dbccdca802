"""SQuAD v2.0: English extractive QA with unanswerable questions (intermediate task)."""


from stilts.tasks import register
from stilts.tasks.common.readers import read_squad_json
from stilts.tasks.common.scoring import qa_score, score_squad_v2
from stilts.tasks.spec import HubSource, TaskSpec


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    """Hub SQuAD-style rows already carry answers as {"text": [...], "answer_start": [...]}."""
    return [
        {"id": row["id"], "context": row["context"], "question": row["question"],
         "answers": {"text": list(row["answers"]["text"]), "answer_start": list(row["answers"]["answer_start"])}}
        for row in dataset
    ]


SQUAD = register(TaskSpec(
    name="squad",
    description="SQuAD v2.0 (span QA, unanswerable questions scored at the first token)",
    head="span_qa",
    domain="qa",
    xstilts_pool=True,
    reader=read_squad_json,
    files={"train": ("squad/train-v2.0.json",), "dev": ("squad/dev-v2.0.json",)},
    languages=("en",),
    scorer=score_squad_v2,
    score_key=qa_score,
    main_metrics=("exact", "f1"),
    allow_no_answer=True,
    download_hint="Get train-v2.0.json and dev-v2.0.json from the SQuAD v2.0 release into DIR/squad/.",
    hub=(HubSource(path="rajpurkar/squad_v2", name=lambda language: None,
                  splits={"train": "train", "dev": "validation"}, convert=hub_rows_to_examples),),
))
