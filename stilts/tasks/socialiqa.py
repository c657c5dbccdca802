"""Social IQa: English social commonsense, 3-way multiple choice (intermediate task; also the first
step of XTREME-R's XCOPA recipe)."""

from stilts.tasks import register
from stilts.tasks.formats import read_socialiqa_jsonl
from stilts.tasks.scoring import metric, score_labels
from stilts.tasks.spec import HubSource, TaskSpec


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    return [{"id": f"siqa-{i}", "context": f"{row['context']} {row['question']}",
             "choices": [row["answerA"], row["answerB"], row["answerC"]], "label": int(row["label"]) - 1}
            for i, row in enumerate(dataset)]


SOCIALIQA = register(TaskSpec(
    name="socialiqa",
    description="Social IQa (multiple choice over 3 answers)",
    head="multiple_choice",
    domain="commonsense",
    xstilts_pool=True,
    reader=read_socialiqa_jsonl,
    files={
        "train": ("socialiqa/socialiqa-train-dev/train.jsonl", "siqa/socialIQa_v1.4_trn.jsonl"),
        "dev": ("socialiqa/socialiqa-train-dev/dev.jsonl", "siqa/socialIQa_v1.4_dev.jsonl"),
    },
    languages=("en",),
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint=("Get socialiqa-train-dev (train.jsonl + train-labels.lst, dev.jsonl + dev-labels.lst) into "
                   "DIR/socialiqa/, or XTREME's siqa/ download (socialIQa_v1.4_*.jsonl)."),
    # allenai/social_i_qa holds only a loading script, which `datasets` >= 4 refuses: the parquet copy
    # lm-evaluation-harness reads (labels "1"-"3"), pinned.
    hub=(HubSource(path="lighteval/siqa", name=lambda language: None, splits={"train": "train", "dev": "validation"},
                   convert=hub_rows_to_examples, revision="54c6a1f8cb6daf4f5abf24a601852612fb35eb25"),),
))
