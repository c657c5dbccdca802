"""Social IQa: English social commonsense, 3-way multiple choice (intermediate task; also the first
step of XTREME-R's XCOPA recipe)."""

from pathlib import Path

from stilts.errors import StiltsError
from stilts.tasks import register
from stilts.tasks.common.readers import choice_label, jsonl_rows, numbered_lines, require_keys
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.spec import Example, HubSource, TaskSpec


def read_socialiqa_jsonl(path: Path) -> list[Example]:
    """Social IQa: the release's `train.jsonl` + `train-labels.lst` (labels 1-3 on their own lines),
    or the v1.4 files XTREME downloads, whose rows carry `correct` (A-C)."""
    rows = list(jsonl_rows(path))
    labels_file = path.with_name(f"{path.stem}-labels.lst")
    gold: list[str | None]
    if labels_file.exists():
        gold = [line.strip() for _, line in numbered_lines(labels_file) if line.strip()]
        if len(gold) != len(rows):
            raise StiltsError(f"{labels_file}: {len(gold)} labels for {len(rows)} questions in {path}")
        gold = [str(int(label) - 1) if label.isdigit() else label for label in gold]
    else:
        gold = [None if row.get("correct") in (None, "") else str("ABC".find(str(row["correct"]))) for _, row in rows]
    examples = []
    for (number, row), label in zip(rows, gold):
        where = f"{path}:{number}"
        require_keys(row, ("context", "question", "answerA", "answerB", "answerC"), where)
        examples.append({"id": f"{path.stem}-{number}", "context": f"{row['context']} {row['question']}",
                         "choices": [row["answerA"], row["answerB"], row["answerC"]],
                         "label": choice_label(label, 3, where)})
    return examples


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
