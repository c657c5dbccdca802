"""ANLI+: ANLI rounds 1-3 trained together with MultiNLI and SNLI, one shared 3-way NLI head
(intermediate task, as in Phang et al. 2020); selected on the three ANLI dev rounds."""

from collections.abc import Sequence
from pathlib import Path

from stilts.tasks import register
from stilts.tasks.common.readers import check_label, jsonl_rows, read_glue_tsv, require_keys
from stilts.tasks.common.scoring import metric, score_labels
from stilts.tasks.mnli import NLI_LABELS
from stilts.tasks.mnli import hub_rows_to_examples as mnli_rows
from stilts.tasks.spec import Example, HubSource, TaskSpec


ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction"}

def read_nli_jsonl(path: Path, labels: Sequence[str]) -> list[Example]:
    """ANLI release (`context`, `hypothesis`, label e/n/c) or SNLI (`sentence1`, `sentence2`,
    `gold_label`) jsonl; SNLI pairs without annotator consensus (gold_label "-") are skipped, as
    everyone does."""
    examples = []
    for number, row in jsonl_rows(path):
        where = f"{path}:{number}"
        if "gold_label" in row:
            require_keys(row, ("sentence1", "sentence2"), where)
            if row["gold_label"] == "-":
                continue
            text_a, text_b, label = row["sentence1"], row["sentence2"], row["gold_label"]
        else:
            require_keys(row, ("context", "hypothesis", "label"), where)
            text_a, text_b, label = row["context"], row["hypothesis"], ANLI_LABELS.get(row["label"], row["label"])
        examples.append({"id": str(row.get("uid", row.get("pairID", f"{path.stem}-{number}"))),
                         "text_a": text_a, "text_b": text_b, "label": check_label(label, labels, where)})
    return examples

_HUB_LABELS = ("entailment", "neutral", "contradiction")  # facebook/anli and stanfordnlp/snli order


def read_nli(path: Path) -> list[dict]:
    """The bundle holds ANLI/SNLI jsonl and GLUE's MNLI tsv."""
    if path.suffix == ".tsv":
        return read_glue_tsv(path, NLI_LABELS, text_a="sentence1", text_b="sentence2", label="gold_label")
    return read_nli_jsonl(path, NLI_LABELS)


def hub_anli_rows(dataset, language: str) -> list[dict]:
    return [{"id": row["uid"], "text_a": row["premise"], "text_b": row["hypothesis"], "label": _HUB_LABELS[row["label"]]}
            for row in dataset]


def hub_snli_rows(dataset, language: str) -> list[dict]:
    return [{"id": f"snli-{i}", "text_a": row["premise"], "text_b": row["hypothesis"], "label": _HUB_LABELS[row["label"]]}
            for i, row in enumerate(dataset) if row["label"] >= 0]


def _anli_round(number: int) -> HubSource:
    return HubSource(path="facebook/anli", name=lambda language: None,
                     splits={"train": f"train_r{number}", "dev": f"dev_r{number}"}, convert=hub_anli_rows)


ANLI_PLUS = register(TaskSpec(
    name="anli_plus",
    description="ANLI R1-R3 + MultiNLI + SNLI (sentence-pair classification, one 3-way NLI head)",
    head="classification",
    domain="nli",
    xstilts_pool=True,
    reader=read_nli,
    files={
        "train": (("anli/anli_v1.0/R[123]/train.jsonl", "MNLI/train.tsv", "snli/snli_1.0/snli_1.0_train.jsonl"),),
        "dev": ("anli/anli_v1.0/R[123]/dev.jsonl",),
    },
    languages=("en",),
    labels=NLI_LABELS,
    scorer=score_labels,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    download_hint=("Put the ANLI v1.0 release in DIR/anli/anli_v1.0/ (R1-R3), GLUE's MNLI in DIR/MNLI/ and "
                   "SNLI 1.0 in DIR/snli/snli_1.0/."),
    hub=(_anli_round(1), _anli_round(2), _anli_round(3),
         HubSource(path="nyu-mll/glue", name=lambda language: "mnli", splits={"train": "train"}, convert=mnli_rows),
         HubSource(path="stanfordnlp/snli", name=lambda language: None, splits={"train": "train"},
                   convert=hub_snli_rows)),
))
