"""Readers of the intermediate tasks' release formats (on the shipped samples) and their bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from stilts.errors import StiltsError
from stilts.tasks import get_task
from stilts.tasks.common.readers import read_token_tsv
from stilts.tasks.commonsenseqa import read_commonsenseqa_jsonl
from stilts.tasks.xcopa import read_copa_jsonl
from stilts.tasks.cosmosqa import read_cosmosqa_csv
from stilts.tasks.anli_plus import read_nli_jsonl
from stilts.tasks.socialiqa import read_socialiqa_jsonl
from stilts.tasks.mnli import NLI_LABELS
from stilts.tasks.common.sources import SAMPLES_ROOT, read_files

INTERMEDIATE = ("anli_plus", "mnli", "qqp", "squad", "hellaswag", "cosmosqa", "commonsenseqa", "socialiqa", "ccg")


@pytest.mark.parametrize("name", INTERMEDIATE)
def test_every_intermediate_task_reads_its_samples(name: str) -> None:
    spec = get_task(name)
    for split in ("train", "dev"):
        examples = read_files(spec, split, "en", SAMPLES_ROOT)
        assert examples, (name, split)
        if spec.head == "multiple_choice":
            assert all(0 <= e["label"] < len(e["choices"]) for e in examples)
        if spec.head == "classification":
            assert {e["label"] for e in examples} <= set(spec.labels)


def test_cosmosqa_csv_fields_and_quoting() -> None:
    path = SAMPLES_ROOT / "cosmosqa/valid.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    examples = read_cosmosqa_csv(path)
    assert len(examples) == len(rows)
    assert examples[0]["context"] == f"{rows[0]['context']} {rows[0]['question']}"
    assert examples[0]["choices"] == [rows[0][f"answer{i}"] for i in range(4)]
    assert examples[0]["label"] == int(rows[0]["label"])


def test_commonsenseqa_answer_key_maps_to_choice_index(tmp_path: Path) -> None:
    row = {"answerKey": "C", "id": "q1", "question": {"question_concept": "x", "stem": "Where?",
           "choices": [{"label": k, "text": f"place {k}"} for k in "ABCDE"]}}
    path = tmp_path / "dev_rand_split.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert read_commonsenseqa_jsonl(path) == [{"id": "q1", "context": "Where?", "choices": [f"place {k}" for k in "ABCDE"],
                                               "label": 2}]
    row["answerKey"] = "F"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(StiltsError, match=f"{path}:1: answerKey 'F'"):
        read_commonsenseqa_jsonl(path)


def test_socialiqa_labels_file_and_v14_layout_agree(tmp_path: Path) -> None:
    question = {"context": "Kai lent a pen.", "question": "How does Kai feel?", "answerA": "kind", "answerB": "sad",
                "answerC": "angry"}
    release = tmp_path / "train.jsonl"
    release.write_text(json.dumps(question) + "\n", encoding="utf-8")
    (tmp_path / "train-labels.lst").write_text("1\n", encoding="utf-8")
    v14 = tmp_path / "socialIQa_v1.4_trn.jsonl"
    v14.write_text(json.dumps(dict(question, correct="A")) + "\n", encoding="utf-8")
    for path in (release, v14):
        [example] = read_socialiqa_jsonl(path)
        assert example["label"] == 0 and example["choices"] == ["kind", "sad", "angry"]
        assert example["context"] == "Kai lent a pen. How does Kai feel?"
    (tmp_path / "train-labels.lst").write_text("1\n2\n", encoding="utf-8")
    with pytest.raises(StiltsError, match="2 labels for 1 questions"):
        read_socialiqa_jsonl(release)


def test_snli_skips_pairs_without_consensus_and_anli_maps_letters(tmp_path: Path) -> None:
    path = tmp_path / "snli_1.0_dev.jsonl"
    rows = [{"gold_label": "-", "sentence1": "a", "sentence2": "b", "pairID": "p0"},
            {"gold_label": "neutral", "sentence1": "c", "sentence2": "d", "pairID": "p1"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert read_nli_jsonl(path, NLI_LABELS) == [{"id": "p1", "text_a": "c", "text_b": "d", "label": "neutral"}]
    anli = tmp_path / "dev.jsonl"
    anli.write_text(json.dumps({"uid": "u1", "context": "x", "hypothesis": "y", "label": "c"}) + "\n", encoding="utf-8")
    assert read_nli_jsonl(anli, NLI_LABELS)[0]["label"] == "contradiction"
    anli.write_text(json.dumps({"uid": "u1", "context": "x", "hypothesis": "y", "label": "q"}) + "\n", encoding="utf-8")
    with pytest.raises(StiltsError, match=f"{anli}:1: label 'q'"):
        read_nli_jsonl(anli, NLI_LABELS)


def test_copa_context_and_bad_question(tmp_path: Path) -> None:
    path = tmp_path / "val.en.jsonl"
    row = {"premise": "The man turned on the faucet.", "choice1": "The toilet filled.", "choice2": "Water flowed.",
           "question": "effect", "label": 1, "idx": 7}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    [example] = read_copa_jsonl(path)
    assert example == {"id": "7", "context": "The man turned on the faucet. What was the effect?",
                       "choices": ["The toilet filled.", "Water flowed."], "label": 1}
    path.write_text(json.dumps(dict(row, question="why")) + "\n", encoding="utf-8")
    with pytest.raises(StiltsError, match="neither 'cause' nor 'effect'"):
        read_copa_jsonl(path)
    path.write_text(json.dumps(dict(row, label=2)) + "\n", encoding="utf-8")
    with pytest.raises(StiltsError, match=f"{path}:1: label 2"):
        read_copa_jsonl(path)


def test_ccg_label_set_comes_from_training_data(tiny_tokenizer, tmp_path) -> None:
    """Dev supertags never seen in training become <other>: featurized, and always scored wrong."""
    from stilts.data.datamodule import OTHER_LABEL, TaskDataModule

    spec = get_task("ccg")
    train_tags = {t for s in read_files(spec, "train", "en", SAMPLES_ROOT) for t in s["tags"]}
    dev = read_files(spec, "dev", "en", SAMPLES_ROOT)
    unseen = {t for s in dev for t in s["tags"]} - train_tags
    assert unseen, "the samples should hold a dev supertag unseen in training"
    module = TaskDataModule(spec, tiny_tokenizer, root=SAMPLES_ROOT, cache_dir=tmp_path)
    assert module.labels == sorted(train_tags) + [OTHER_LABEL]
    module.setup()
    other = module.labels.index(OTHER_LABEL)
    assert any(other in labels for labels in module.val_sets[0].features["labels"])
    # A perfect tagger of the known tags still loses exactly the unseen tokens.
    predictions = [[t if t in train_tags else OTHER_LABEL for t in s["tags"]] for s in dev]
    total = sum(len(s["tags"]) for s in dev)
    missed = sum(t in unseen for s in dev for t in s["tags"])
    assert spec.scorer(dev, predictions, "en") == {"accuracy": pytest.approx(100 * (total - missed) / total)}


def test_ccg_missing_files_say_what_to_provide(tmp_path: Path) -> None:
    with pytest.raises(StiltsError, match="LDC") as info:
        read_files(get_task("ccg"), "train", "en", tmp_path)
    assert str(tmp_path / "ccg" / "train.tsv") in str(info.value)


def test_open_label_set_reader_accepts_any_tag(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("The\tNP[nb]/N\ndog\tN\n\n", encoding="utf-8")
    assert read_token_tsv(path, None)[0]["tags"] == ["NP[nb]/N", "N"]
