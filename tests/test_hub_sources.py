"""Every task's Hub source is recorded in stilts/tasks/common/hub_schema.json and its converter turns rows of
exactly the recorded features into stilts examples (`datasets.load_dataset` is replaced by in-memory
datasets: the Hub is not reachable here); a dataset whose features changed is refused in one line."""

from __future__ import annotations

import re

import datasets
import pytest

from stilts.errors import StiltsError
from stilts.tasks import get_task, task_names
from stilts.tasks.common.hub_schema import recorded_source
from stilts.tasks.common.sources import SAMPLES_ROOT, load_examples
from stilts.tasks.tydiqa import LANGUAGE_NAMES as TYDIQA_NAMES
from stilts.tasks.udpos import UPOS

QA_ROW = {"id": "q1", "title": "T", "context": "Paris is in France.", "question": "Where is Paris?",
          "answers": {"text": ["France"], "answer_start": [12]}}
COPA_ROW = {"premise": "It rained.", "choice1": "The grass got wet.", "choice2": "The sun shone.", "question": "effect",
            "label": 0, "idx": 3}
ROWS = {
    "rajpurkar/squad_v2": [QA_ROW],
    "rajpurkar/squad": [QA_ROW],
    "google/xquad": [QA_ROW],
    "google/xtreme": [QA_ROW],
    "google-research-datasets/tydiqa": [dict(QA_ROW, id="english-1"), dict(QA_ROW, id="swahili-2")],
    "nyu-mll/glue": [{"premise": "a", "hypothesis": "b", "question1": "c?", "question2": "d?", "label": 1, "idx": 0}],
    "facebook/anli": [{"uid": "u1", "premise": "a", "hypothesis": "b", "label": 2, "reason": ""}],
    "stanfordnlp/snli": [{"premise": "a", "hypothesis": "b", "label": 0}, {"premise": "c", "hypothesis": "d", "label": -1}],
    "Rowan/hellaswag": [{"ind": 4, "ctx": "He opens", "endings": ["a", "b", "c", "d"], "label": "2"}],
    "Samsoup/cosmos_qa": [{"id": "c1", "context": "Ctx.", "question": "Why?", "answer0": "a", "answer1": "b",
                           "answer2": "c", "answer3": "d", "label": 3}],
    "tau/commonsense_qa": [{"id": "s1", "question": "Where?", "question_concept": "x",
                            "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["a", "b", "c", "d", "e"]},
                            "answerKey": "B"}],
    "lighteval/siqa": [{"context": "Kai smiled.", "question": "Why?", "answerA": "a", "answerB": "b",
                        "answerC": "c", "label": "3"}],
    "facebook/xnli": [{"premise": "a", "hypothesis": "b", "label": 1}],
    "google-research-datasets/paws-x": [{"id": 7, "sentence1": "a", "sentence2": "b", "label": 1}],
    "aps/super_glue": [COPA_ROW],
    "cambridgeltl/xcopa": [COPA_ROW],
}
TAG_ROWS = {
    "udpos": [{"tokens": ["big", "dog"], "pos_tags": [UPOS.index("ADJ"), UPOS.index("NOUN")]}],
    "unimelb-nlp/wikiann": [{"tokens": ["Ada", "Byron"], "ner_tags": [1, 2]}],
}
EXPECTED = {
    "squad": {"id": "q1", "context": "Paris is in France.", "question": "Where is Paris?",
              "answers": {"text": ["France"], "answer_start": [12]}},
    "xnli": {"id": "de-0", "text_a": "a", "text_b": "b", "label": "neutral"},
    "pawsx": {"id": "7", "text_a": "a", "text_b": "b", "label": "1"},
    "qqp": {"id": "0", "text_a": "c?", "text_b": "d?", "label": "1"},
    "hellaswag": {"id": "4", "context": "He opens", "choices": ["a", "b", "c", "d"], "label": 2},
    "cosmosqa": {"id": "cosmosqa-0", "context": "Ctx. Why?", "choices": ["a", "b", "c", "d"], "label": 3},
    "commonsenseqa": {"id": "s1", "context": "Where?", "choices": ["a", "b", "c", "d", "e"], "label": 1},
    "socialiqa": {"id": "siqa-0", "context": "Kai smiled. Why?", "choices": ["a", "b", "c"], "label": 2},
    "xcopa": {"id": "3", "context": "It rained. What was the effect?", "choices": ["The grass got wet.", "The sun shone."],
              "label": 0},
    "udpos": {"id": "de-0", "tokens": ["big", "dog"], "tags": ["ADJ", "NOUN"]},
    "panx": {"id": "de-0", "tokens": ["Ada", "Byron"], "tags": ["B-PER", "I-PER"]},
}


def features_of(compact) -> datasets.Features:
    """`datasets` features from the schema's compact form."""
    def feature(node):
        if node in ("string", "bool"):
            return datasets.Value(node)
        if node in ("int", "float"):
            return datasets.Value(f"{node}64")
        if "class_label" in node:
            return datasets.ClassLabel(names=node["class_label"])
        if "sequence" in node:
            return datasets.List(feature(node["sequence"]))
        return {name: feature(value) for name, value in node.items()}
    return datasets.Features(feature(compact))


def recorded_dataset(path: str, name: str | None, rows: list[dict]) -> datasets.Dataset:
    """Rows as a dataset with exactly the recorded features of its source."""
    entry = recorded_source(path, name)
    assert entry is not None, f"{path} ({name}) is not in hub_schema.json"
    return datasets.Dataset.from_list([{column: row[column] for column in entry["features"]} for row in rows],
                                      features=features_of(entry["features"]))


@pytest.fixture
def hub(monkeypatch):
    calls = []

    def load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split))
        rows = TAG_ROWS.get("udpos" if str(name).startswith("udpos.") else path) or ROWS[path]
        return recorded_dataset(path, name, rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hub_rows_become_examples(hub, name) -> None:
    spec = get_task(name)
    split = "test" if "test" in spec.files else "dev"
    language = "de" if spec.languages != ("en",) and "de" in spec.all_languages else spec.languages[0]
    if name == "xcopa":
        language = "et"
    examples = load_examples(spec, split, language, "hub", None)
    assert examples[0] == EXPECTED[name]
    assert hub, "load_dataset was not called"


def test_anli_plus_concatenates_five_hub_datasets(hub) -> None:
    examples = load_examples(get_task("anli_plus"), "train", "en", "hub", None)
    assert [path for path, _, _ in hub] == ["facebook/anli"] * 3 + ["nyu-mll/glue", "stanfordnlp/snli"]
    assert [split for _, _, split in hub[:3]] == ["train_r1", "train_r2", "train_r3"]
    assert len(examples) == 3 + 1 + 1  # SNLI's label -1 (no consensus) is dropped
    assert {e["label"] for e in examples[:3]} == {"contradiction"}
    hub.clear()
    load_examples(get_task("anli_plus"), "dev", "en", "hub", None)
    assert [split for _, _, split in hub] == ["dev_r1", "dev_r2", "dev_r3"]


def test_parts_serve_only_their_languages(hub) -> None:
    """XQuAD's English model selection uses SQuAD dev; its test sets come from google/xquad."""
    load_examples(get_task("xquad"), "dev", "en", "hub", None)
    load_examples(get_task("xquad"), "test", "th", "hub", None)
    assert hub == [("rajpurkar/squad", None, "validation"), ("google/xquad", "xquad.th", "validation")]
    hub.clear()
    load_examples(get_task("xcopa"), "dev", "en", "hub", None)
    load_examples(get_task("xcopa"), "test", "qu", "hub", None)
    assert hub == [("aps/super_glue", "copa", "validation"), ("cambridgeltl/xcopa", "qu", "test")]


def test_tydiqa_keeps_only_the_requested_language(hub) -> None:
    examples = load_examples(get_task("tydiqa"), "dev", "sw", "hub", None)
    assert [e["id"] for e in examples] == ["swahili-2"]


def test_ccg_has_no_hub_source() -> None:
    with pytest.raises(StiltsError, match="no Hugging Face Hub source"):
        load_examples(get_task("ccg"), "train", "en", "hub", None)


# -- the recorded schema -----------------------------------------------------------------------------------

def _served() -> list[tuple[str, int, str, str]]:
    """(task, part index, split, language) for every split and language a Hub part serves."""
    return [(name, index, split, language) for name in task_names() for index, part in enumerate(get_task(name).hub)
            for split in part.splits for language in get_task(name).all_languages if part.serves(split, language)]


def test_every_hub_source_is_recorded_with_its_revision_configs_and_splits() -> None:
    served = _served()
    assert {name for name, *_ in served} >= {"squad", "mnli", "anli_plus", "qqp", "hellaswag", "cosmosqa",
                                             "commonsenseqa", "socialiqa", "xnli", "pawsx", "udpos", "panx", "xquad",
                                             "mlqa", "tydiqa", "xcopa"}
    for name, index, split, language in served:
        part = get_task(name).hub[index]
        entry = recorded_source(part.path, part.name(language))
        where = f"{name} {split}/{language}: {part.path} ({part.name(language)})"
        assert entry is not None, f"{where} is not recorded"
        assert part.revision == entry["revision"], where
        assert part.splits[split] in entry["splits"], where
        if entry["publisher"] != "original":  # a copy is pinned to a commit, so it cannot drift under a stage key
            assert part.revision is not None and re.fullmatch(r"[0-9a-f]{40}", part.revision), where
    assert not {"allenai/cosmos_qa", "allenai/social_i_qa", "facebook/mlqa"} & {
        part.path for name in task_names() for part in get_task(name).hub}, "script-only repositories"


def _value(feature, index: int, hints: dict, column: str):
    """A value of a recorded feature (hints fix the columns whose content a converter interprets)."""
    if column in hints:
        return hints[column]
    if feature == "string":
        return f"w{index} x"
    if feature in ("int", "float"):
        return index
    if feature == "bool":
        return False
    if "class_label" in feature:
        return index % len(feature["class_label"])
    if "sequence" in feature:
        return [_value(feature["sequence"], index + k, {}, column) for k in range(3)]
    return {name: _value(value, index, hints.get(column, {}), name) for name, value in feature.items()}


HINTS = {  # columns whose values a converter parses
    "Rowan/hellaswag": {"label": "2"},
    "lighteval/siqa": {"label": "3"},
    "tau/commonsense_qa": {"answerKey": "B", "choices": {"label": list("ABCDE"), "text": list("abcde")}},
    "google-research-datasets/tydiqa": {"id": "{name}-7"},
    "cambridgeltl/xcopa": {"label": 1},
    "allenai/openbookqa": {"answerKey": "C", "choices": {"label": list("ABCD"), "text": list("abcd")}},
    "UCLNLP/adversarial_qa": {"context": QA_ROW["context"], "answers": QA_ROW["answers"]},
}


def generated_dataset(path: str, name: str | None, language: str) -> datasets.Dataset:
    entry = recorded_source(path, name)
    hints = {column: (value.format(name=TYDIQA_NAMES.get(language, "")) if isinstance(value, str) else value)
             for column, value in HINTS.get(path, {}).items()}
    rows = [{column: _value(feature, i, hints, column) for column, feature in entry["features"].items()}
            for i in range(4)]
    return datasets.Dataset.from_list(rows, features=features_of(entry["features"]))


@pytest.mark.parametrize("name,split,language", sorted({(name, split, language) for name, _, split, language in _served()
                                                        if language in ("en", "de", "et")}))
def test_converters_read_rows_of_exactly_the_recorded_features(monkeypatch, name, split, language) -> None:
    """Rows generated from the recorded features alone (no hand-written row) become examples of the
    head's shape: a renamed column or a changed type breaks this test, offline."""
    spec = get_task(name)
    monkeypatch.setattr(datasets, "load_dataset", lambda path, config=None, split=None, revision=None:
                        generated_dataset(path, config, language))
    examples = load_examples(spec, split, language, "hub", None)
    assert examples
    for example in examples:
        if spec.head == "classification":
            assert example["label"] in spec.labels and example["text_a"] and example["text_b"]
        elif spec.head == "multiple_choice":
            assert 0 <= example["label"] < len(example["choices"]) and example["context"]
        elif spec.head == "tagging":
            assert len(example["tags"]) == len(example["tokens"]) and set(example["tags"]) <= set(spec.labels)
        elif spec.head == "span_qa":
            assert example["question"] and len(example["answers"]["text"]) == len(example["answers"]["answer_start"])
        else:
            assert example["query"] and example["candidate"]


def test_a_dataset_whose_features_changed_is_refused_in_one_line(monkeypatch) -> None:
    entry = recorded_source("facebook/xnli", "de")
    changed = dict(entry["features"], label="string")  # a string label where a class label was
    renamed = {("sentence1" if column == "premise" else column): feature for column, feature in entry["features"].items()}
    for features, expected in ((changed, r"column 'label' is \"string\", recorded as"),
                               (renamed, "column 'premise' is missing")):
        rows = [{column: _value(feature, 0, {}, column) for column, feature in features.items()}]
        dataset = datasets.Dataset.from_list(rows, features=features_of(features))
        monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: dataset)
        with pytest.raises(StiltsError, match=expected) as error:
            load_examples(get_task("xnli"), "test", "de", "hub", None)
        assert "facebook/xnli (de)" in str(error.value) and "\n" not in str(error.value)


def test_xtreme_r_udpos_languages_are_refused_on_the_hub_naming_ud_treebanks() -> None:
    with pytest.raises(StiltsError, match="not on the Hugging Face Hub.*UD treebanks.*data=local") as error:
        load_examples(get_task("udpos"), "test", "lt", "hub", None)
    assert "udpos/**/lt_*-ud-test.conllu" in str(error.value)


def test_hub_with_a_data_root_reads_what_the_hub_does_not_serve_from_files(hub) -> None:
    examples = load_examples(get_task("ccg"), "train", "en", "hub", SAMPLES_ROOT)
    assert examples and hub == []  # CCGbank (LDC) is never on the Hub: read from data.root
    load_examples(get_task("xnli"), "dev", "de", "hub", SAMPLES_ROOT)
    assert hub == [("facebook/xnli", "de", "validation")]  # what the Hub serves still comes from it


def test_a_source_change_is_a_new_stage_key(monkeypatch) -> None:
    """Another repository or revision of a Hub source trains another stage (features are cached by
    the examples' content, so they follow the data on their own)."""
    import dataclasses

    import stilts.tasks
    from stilts.run.plan import plan_stages
    from tests.test_configs import compose_config

    cfg = compose_config("+intermediate=cosmosqa", "target=xnli", "model=tiny")
    before = plan_stages(cfg)[0].key
    spec = get_task("cosmosqa")
    moved = dataclasses.replace(spec, hub=(dataclasses.replace(spec.hub[0], revision="0" * 40),))
    monkeypatch.setitem(stilts.tasks._TASKS, "cosmosqa", moved)
    assert plan_stages(cfg)[0].key != before
    assert plan_stages(compose_config("+intermediate=cosmosqa", "target=xnli", "model=tiny", "data=sample"))[0].key \
        not in (before, plan_stages(cfg)[0].key)


def test_a_row_count_unlike_the_published_one_is_noted(monkeypatch) -> None:
    from stilts.tasks.common.sources import load_split

    monkeypatch.setattr(datasets, "load_dataset", lambda path, config=None, split=None, revision=None:
                        generated_dataset(path, config, "de"))
    loaded = load_split(get_task("xnli"), "test", "de", "hub", None)
    assert loaded.notes == ("facebook/xnli (de) test: 4 rows, 5010 published",)
