"""Tasks declared in YAML (stilts.tasks.common.declared): built from local parquet folders in the Hub
layout and from JSON lines / parquet files under a data root, made of the shipped samples' real rows, they
give exactly the examples the built-in task of the same data gives; bad declarations and bad mappings
are one error naming the YAML key (and the dataset's columns); the declaration is part of the stage key;
and through the CLI a declared task found on Hydra's search path trains in a mixture, alone, is ranked
and joins a sweep's plan. (The shipped declarations' recorded schemas: tests/test_hub_sources.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest
import yaml

from stilts.errors import StiltsError
from stilts.mixtures import expand_intermediate
from stilts.tasks import declare_task, get_task
from stilts.tasks.common.declared import declared_spec
from stilts.tasks.common.sources import SAMPLES_ROOT, load_examples, read_files, uses_hub
from stilts.tasks.panx import LABELS as PANX_LABELS
from tests.cli import out, stilts

NLI_LABELS = ["entailment", "neutral", "contradiction"]
NLI = {"head": "classification", "domain": "nli", "columns": {"text": "premise", "text_pair": "hypothesis", "label": "label"},
       "labels": NLI_LABELS}


def _without_ids(examples: list[dict]) -> list[dict]:
    return [{key: value for key, value in example.items() if key != "id"} for example in examples]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    """The samples of MNLI and PAN-X (en) as parquet folders in the Hub layout, and HellaSwag and SQuAD v2
    as JSON lines and parquet files under a data root, with the columns their Hub datasets have."""
    root = tmp_path_factory.mktemp("declared")
    for name, build in (("nli", _nli_rows), ("ner", _ner_rows)):  # the Hub's layout, written by `datasets`
        (root / "hub" / name / "data").mkdir(parents=True)
        for split, hub_split in (("train", "train"), ("dev", "validation")):
            columns, features = build(split)
            datasets.Dataset.from_dict(columns, features=features).to_parquet(
                root / "hub" / name / "data" / f"{hub_split}-00000-of-00001.parquet")
    data = root / "data_root" / "mine"
    data.mkdir(parents=True)
    for split in ("train", "dev"):
        with open(data / f"hellaswag_{split}.jsonl", "w", encoding="utf-8") as handle:
            for example in read_files(get_task("hellaswag"), split, "en", SAMPLES_ROOT):
                handle.write(json.dumps({"ind": example["id"], "ctx": example["context"], "endings": example["choices"],
                                         "label": str(example["label"])}) + "\n")
        squad = read_files(get_task("squad"), split, "en", SAMPLES_ROOT)
        datasets.Dataset.from_list([{"id": e["id"], "context": e["context"], "question": e["question"],
                                     "answers": e["answers"]} for e in squad]).to_parquet(data / f"squad_{split}.parquet")
    return root


def _nli_rows(split: str) -> tuple[dict[str, list], datasets.Features]:
    examples = read_files(get_task("mnli"), split, "en", SAMPLES_ROOT)
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=NLI_LABELS)})
    return {"premise": [e["text_a"] for e in examples], "hypothesis": [e["text_b"] for e in examples],
            "label": [NLI_LABELS.index(e["label"]) for e in examples]}, features


def _ner_rows(split: str) -> tuple[dict[str, list], datasets.Features]:
    examples = read_files(get_task("panx"), split, "en", SAMPLES_ROOT)
    features = datasets.Features({"tokens": datasets.List(datasets.Value("string")),
                                  "ner_tags": datasets.List(datasets.ClassLabel(names=list(PANX_LABELS)))})
    return {"tokens": [e["tokens"] for e in examples],
            "ner_tags": [[PANX_LABELS.index(tag) for tag in e["tags"]] for e in examples]}, features


def _declare(name: str, **node):
    return declared_spec(name, node, f"conf/intermediate/{name}.yaml")


# -- each head, from local data, gives the built-in task's examples ------------------------------------------

def test_a_hub_layout_folder_gives_the_examples_of_the_builtin_task(local) -> None:
    spec = _declare("my_nli", **NLI, source={"path": str(local / "hub" / "nli")})
    for split in ("train", "dev"):
        examples = load_examples(spec, split, "en", "hub", None)
        assert _without_ids(examples) == _without_ids(read_files(get_task("mnli"), split, "en", SAMPLES_ROOT))
    assert spec.hub[0].splits == {"train": "train", "dev": "validation"} and spec.labels == tuple(NLI_LABELS)
    # A task with a source and no files is read from its source whatever data.source says.
    assert uses_hub(spec, "train", "en", "files", SAMPLES_ROOT)


def test_tagging_with_class_label_tags_and_seqeval_f1(local) -> None:
    spec = _declare("my_ner", head="tagging", domain="entities", source={"path": str(local / "hub" / "ner")},
                    columns={"tokens": "tokens", "tags": "ner_tags"}, labels=list(PANX_LABELS), metric="f1")
    examples = load_examples(spec, "dev", "en", "hub", None)
    assert _without_ids(examples) == _without_ids(read_files(get_task("panx"), "dev", "en", SAMPLES_ROOT))
    assert spec.fallback_label == "O" and spec.main_metrics == ("f1", "accuracy")
    assert spec.scorer(examples, [e["tags"] for e in examples], "en")["f1"] == 100.0


def test_multiple_choice_from_json_lines_under_the_data_root(local) -> None:
    spec = _declare("my_mc", head="multiple_choice", domain="commonsense",
                    files={"train": "mine/hellaswag_train.jsonl", "dev": "mine/hellaswag_dev.jsonl"},
                    columns={"id": "ind", "context": "ctx", "choices": "endings", "label": "label"})
    examples = load_examples(spec, "dev", "en", "files", local / "data_root")
    assert examples == read_files(get_task("hellaswag"), "dev", "en", SAMPLES_ROOT)
    with pytest.raises(StiltsError, match="no Hugging Face Hub source.*data.root"):
        uses_hub(spec, "train", "en", "hub", None)  # files only: the Hub cannot serve it


def test_span_qa_from_parquet_files_with_unanswerable_questions(local) -> None:
    columns = {"id": "id", "context": "context", "question": "question", "answers": "answers"}
    files = {"train": "mine/squad_train.parquet", "dev": ["mine/squad_dev.parquet"]}
    spec = _declare("my_qa", head="span_qa", domain="qa", files=files, columns=columns, metric="squad_v2")
    examples = load_examples(spec, "dev", "en", "files", local / "data_root")
    assert examples == read_files(get_task("squad"), "dev", "en", SAMPLES_ROOT)
    assert spec.allow_no_answer and spec.main_metrics == ("exact", "f1")
    v1 = _declare("my_qa", head="span_qa", domain="qa", files=files, columns=columns)  # SQuAD v1.1: every question answered
    with pytest.raises(StiltsError, match=r"row \d+ \(id \w+\): the question has no answer; declare metric: squad_v2"):
        load_examples(v1, "dev", "en", "files", local / "data_root")


def test_columns_can_be_struct_paths_lists_of_columns_and_keys(tmp_path) -> None:
    """OpenBookQA-style answer keys and nested choices, CosmosQA-style joined context and separate answer columns."""
    rows = {"stem": ["Q1?", "Q2?"], "fact": ["F1.", "F2."], "choices": [{"text": ["a", "b"], "label": ["A", "B"]}] * 2,
            "key": ["B", "A"], "a0": ["x", "y"], "a1": ["z", "w"]}
    path = tmp_path / "mc" / "train.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps({k: v[i] for k, v in rows.items()}) + "\n" for i in range(2)), encoding="utf-8")
    keyed = _declare("keyed", head="multiple_choice", domain="qa", files={"train": "mc/train.jsonl", "dev": "mc/train.jsonl"},
                     columns={"context": ["fact", "stem"], "choices": "choices.text", "label": "key"}, labels=["A", "B"])
    assert load_examples(keyed, "train", "en", "files", tmp_path) == [
        {"id": "keyed-0", "context": "F1. Q1?", "choices": ["a", "b"], "label": 1},
        {"id": "keyed-1", "context": "F2. Q2?", "choices": ["a", "b"], "label": 0}]
    listed = _declare("listed", head="multiple_choice", domain="qa", files={"train": "mc/train.jsonl", "dev": "mc/train.jsonl"},
                      columns={"question": "stem", "choices": ["a0", "a1"], "label": "key"}, labels=["A", "B"])
    assert [e["choices"] for e in load_examples(listed, "train", "en", "files", tmp_path)] == [["x", "z"], ["y", "w"]]


def test_labels_integer_string_and_unlabelled_rows(tmp_path) -> None:
    path = tmp_path / "t" / "rows.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(row) + "\n" for row in [{"s": "a", "y": 1}, {"s": "b", "y": -1}, {"s": "c", "y": 0}]))
    spec = _declare("ints", head="classification", domain="nli", files={"train": "t/rows.jsonl", "dev": "t/rows.jsonl"},
                    columns={"text": "s", "label": "y"}, labels=["no", "yes"])
    assert [(e["text_a"], e["text_b"], e["label"]) for e in load_examples(spec, "train", "en", "files", tmp_path)] == \
        [("a", None, "yes"), ("c", None, "no")]  # -1: unlabelled, skipped
    path.write_text(json.dumps({"s": "a", "y": "maybe"}) + "\n")
    strings = _declare("strings", head="classification", domain="nli", files={"train": "t/rows.jsonl", "dev": "t/rows.jsonl"},
                       columns={"text": "s", "label": "y"}, labels=["no", "yes"])
    with pytest.raises(StiltsError, match=r"row 0 \(id strings-0\): label 'maybe' is not in task.labels \['no', 'yes'\] "
                                          r"\(conf/intermediate/strings.yaml\)"):
        load_examples(strings, "train", "en", "files", tmp_path)


def test_single_texts_are_encoded_alone_and_a_null_text_is_refused(tmp_path, tiny_tokenizer) -> None:
    from stilts.heads import FeaturizeSettings, head_of

    path = tmp_path / "s" / "rows.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(row) + "\n" for row in [{"s": "good film", "y": 1}, {"s": "bad", "y": 0}]))
    spec = _declare("single", head="classification", domain="paraphrase", files={"train": "s/rows.jsonl", "dev": "s/rows.jsonl"},
                    columns={"text": "s", "label": "y"}, labels=["negative", "positive"])
    examples = load_examples(spec, "train", "en", "files", tmp_path)
    batch = {key: [example[key] for example in examples] for key in examples[0]} | {"example_index": [0, 1]}
    features = head_of(spec).featurize(batch, tiny_tokenizer, FeaturizeSettings(max_length=32), spec.label_to_id)
    assert features["input_ids"] == tiny_tokenizer(["good film", "bad"])["input_ids"] and features["labels"] == [1, 0]
    path.write_text(json.dumps({"s": "fine", "y": 1}) + "\n" + json.dumps({"s": None, "y": 1}) + "\n")
    with pytest.raises(StiltsError, match=r"row 1 \(id single-1\): task.columns.text 's' is empty \(null\)"):
        load_examples(spec, "train", "en", "files", tmp_path)


# -- bad declarations and bad mappings: one line naming the YAML key -----------------------------------------

@pytest.mark.parametrize("node,message", [
    ({**NLI, "source": {"path": "x/y"}, "colums": {}}, r"task.colums is not a task setting; valid: description, head"),
    ({**NLI, "source": {"path": "x/y"}, "head": "regression"}, r"task.head must be one of classification, multiple_choice"),
    ({**NLI, "source": {"path": "x/y"}, "domain": "law"}, r"task.domain must be one of qa, nli"),
    ({**NLI}, r"task.source or task.files must say where the data is"),
    ({**NLI, "source": {"path": "x/y", "splits": {"train": "train"}}}, r"task.source.splits must map the stilts splits train and dev"),
    ({**NLI, "source": {"path": "./nowhere"}}, r"task.source.path './nowhere' is not a folder"),
    ({**NLI, "files": {"train": "a.txt", "dev": "b.json"}}, r"task.files.train 'a.txt' must be a path under data.root ending in"),
    ({**NLI, "source": {"path": "x/y"}, "columns": {"text": "premise"}}, r"task.columns.label is needed by a classification task"),
    ({**NLI, "source": {"path": "x/y"}, "columns": {**NLI["columns"], "tokens": "t"}}, r"task.columns.tokens is not a classification column role"),
    ({**NLI, "source": {"path": "x/y"}, "labels": None}, r"task.labels must be a non-empty list of the label names"),
    ({**NLI, "source": {"path": "x/y"}, "labels": ["a", "a"]}, r"task.labels names a label twice"),
    ({**NLI, "source": {"path": "x/y"}, "metric": "f1"}, r"task.metric must be one of accuracy, not 'f1'"),
])
def test_a_bad_declaration_names_its_key(node, message) -> None:
    with pytest.raises(StiltsError, match=f"^conf/intermediate/bad.yaml: {message}") as error:
        declared_spec("bad", node, "conf/intermediate/bad.yaml")
    assert "\n" not in str(error.value)


def test_a_bad_mapping_names_the_key_and_the_datasets_columns(local) -> None:
    spec = _declare("typo", **{**NLI, "columns": {**NLI["columns"], "text": "sentence1"}}, source={"path": str(local / "hub" / "nli")})
    with pytest.raises(StiltsError) as error:
        load_examples(spec, "train", "en", "hub", None)
    assert str(error.value) == (f"conf/intermediate/typo.yaml: task.columns.text names 'sentence1', which "
                                f"{local / 'hub' / 'nli'} does not have; its columns: premise, hypothesis, label")
    wrong_kind = _declare("kind", head="tagging", domain="entities", source={"path": str(local / "hub" / "ner")},
                          columns={"tokens": "ner_tags", "tags": "ner_tags"}, labels=list(PANX_LABELS))
    with pytest.raises(StiltsError, match=r"task.columns.tokens names 'ner_tags', which is \{sequence: \{class_label: "
                                          r"\[O, .*\]\}\} in .*; the tokens column must be \{sequence: string\}"):
        load_examples(wrong_kind, "train", "en", "hub", None)


def test_a_recorded_hub_source_is_checked_offline_when_declared() -> None:
    """boolq.yaml's source is recorded in hub_schema.json: a typo fails at declaration, before any download."""
    node = yaml.safe_load((Path(str(get_task("boolq").declared_in))).read_text())["boolq"]["task"]
    node["columns"]["text_pair"] = "paragraph"
    with pytest.raises(StiltsError, match=r"task.columns.text_pair names 'paragraph', which aps/super_glue \(boolq\) "
                                          r"\(recorded in hub_schema.json\) does not have; its columns: question, passage"):
        declared_spec("boolq2", node, "boolq2.yaml")


# -- the registry, stage keys, mixtures -------------------------------------------------------------------

def test_shipped_declarations_are_tasks_that_mixtures_select_by_domain() -> None:
    assert {get_task(name).head for name in ("boolq", "openbookqa", "adversarial_qa")} == \
        {"classification", "multiple_choice", "span_qa"}
    assert not any(get_task(name).xstilts_pool for name in ("boolq", "openbookqa", "adversarial_qa"))
    mixture = expand_intermediate({"mix": {"tasks": ["mnli", "boolq", "openbookqa", "hellaswag"], "domains": ["commonsense"]}})
    assert list(mixture["mix"]["tasks"]) == ["openbookqa", "hellaswag"]
    assert mixture["mix"]["tasks"]["openbookqa"]["task"] == get_task("openbookqa").definition
    assert expand_intermediate(mixture) == mixture  # idempotent, declaration included


def test_a_declaration_is_declared_once() -> None:
    node = yaml.safe_load(Path(get_task("boolq").declared_in).read_text())["boolq"]["task"]
    assert declare_task("boolq", node, "intermediate.boolq") is get_task("boolq")  # the composed copy of the file
    with pytest.raises(StiltsError, match=r"^intermediate.boolq: task 'boolq' is declared in .*boolq.yaml, and this "
                                          r"declaration differs; a task is declared once"):
        expand_intermediate({"boolq": {"task": {**node, "labels": ["True", "False"]}}})
    with pytest.raises(StiltsError, match=r"task 'mnli' is a built-in task, and this declaration differs"):
        declare_task("mnli", {**NLI, "source": {"path": "nyu-mll/glue", "config": "mnli"}}, "x.yaml")


def test_the_declaration_and_the_folders_content_are_part_of_the_stage_key(local, tmp_path, tiny_model_dir) -> None:
    from stilts.run.plan import plan_stages
    from tests.test_configs import compose_config

    folder = tmp_path / "nli"
    folder.mkdir()
    for path in (local / "hub" / "nli" / "data").iterdir():
        (folder / "data").mkdir(exist_ok=True)
        (folder / "data" / path.name).write_bytes(path.read_bytes())
    declared = {**NLI, "source": {"path": str(folder)}}

    def key(declaration: dict) -> str:
        cfg = compose_config("experiment=quickstart", "target=xnli")
        cfg.intermediate = {"keyed_nli": {"task": declaration, "epochs": 1, "max_length": 64, "effective_batch_size": 8}}
        return plan_stages(cfg, str(tiny_model_dir), intermediate_only=True)[0].key

    from stilts import tasks

    first = key(declared)
    tasks._TASKS.pop("keyed_nli")
    assert key(dict(declared, columns={**NLI["columns"], "text": "hypothesis", "text_pair": "premise"})) != first
    tasks._TASKS.pop("keyed_nli")
    assert key(declared) == first
    (folder / "data" / "train-00000-of-00001.parquet").write_bytes(
        (local / "hub" / "nli" / "data" / "validation-00000-of-00001.parquet").read_bytes())
    assert key(declared) != first  # a local folder counts by its content, as data files do
    tasks._TASKS.pop("keyed_nli")


# -- through the CLI, from a config folder on Hydra's search path --------------------------------------------

@pytest.fixture(scope="module")
def user_conf(local, tmp_path_factory) -> Path:
    conf = tmp_path_factory.mktemp("user_conf")
    (conf / "intermediate").mkdir()
    node = {"my_nli": {"task": {**NLI, "source": {"path": str(local / "hub" / "nli")}},
                       "epochs": 1, "max_length": 64, "effective_batch_size": 16}}
    (conf / "intermediate" / "my_nli.yaml").write_text(yaml.safe_dump(node), encoding="utf-8")
    typo = {"typo_nli": {**node["my_nli"], "task": {**node["my_nli"]["task"], "columns": {**NLI["columns"], "label": "gold"}}}}
    (conf / "intermediate" / "typo_nli.yaml").write_text(yaml.safe_dump(typo), encoding="utf-8")
    return conf


@pytest.mark.cli
def test_a_declared_task_trains_in_a_mixture_and_alone_and_is_ranked(user_conf, tmp_path, stilts_cache) -> None:
    common = ("experiment=quickstart", "target=xnli", "target.languages=[en,de]", f"hydra.searchpath=[file://{user_conf}]",
              f"paths.output_dir={tmp_path / 'out'}")
    mixed = stilts(*common, "+intermediate=mix", "intermediate.mix.tasks=[mnli,my_nli]", cache=stilts_cache, cwd=tmp_path)
    assert mixed.returncode == 0, out(mixed)
    assert "intermediate mix/my_nli (dev): accuracy" in mixed.stdout
    # A sweep job under DDP runs alone in a child process, whose ranks re-execute its command: each finds the task.
    alone = stilts("-m", *common, "+intermediate=my_nli", "trainer=ddp_cpu", cache=stilts_cache, cwd=tmp_path)
    assert alone.returncode == 0, out(alone)
    assert "DDP job: running" in out(alone)
    results = [json.loads(path.read_text()) for path in (tmp_path / "out" / "runs" / "xnli").glob("my_nli/*/*/results.json")]
    assert len(results) == 1 and list(results[0]["intermediate_metrics"]) == ["my_nli"]
    assert results[0]["config"]["intermediate"]["my_nli"]["task"]["source"]["path"].endswith("nli")
    ranked = stilts(*common[:2], *common[3:], "candidates=[mnli,my_nli]", module="stilts.rank", cache=stilts_cache, cwd=tmp_path)
    assert ranked.returncode == 0, out(ranked)
    ranking = json.loads(next((tmp_path / "out" / "rankings").rglob("ranking.json")).read_text())
    rows = {row["candidate"]: row for row in ranking["candidates"]}
    assert set(rows) == {"mnli", "my_nli"} and rows["my_nli"]["estimates"]["data_size"] == 96
    assert rows["my_nli"]["stage"] is not None and rows["my_nli"]["estimates"]["logme"] is not None  # trained stage probed


@pytest.mark.cli
def test_a_declared_task_joins_a_sweeps_plan_and_a_bad_mapping_is_one_error_line(user_conf, tmp_path, stilts_cache) -> None:
    searchpath = f"hydra.searchpath=[file://{user_conf}]"
    prepared = stilts("-m", "experiment=paper_grid_quickstart", searchpath, "+intermediate=none,mnli,my_nli", "target=xnli",
                      "seed=1", f"paths.output_dir={tmp_path}",
                      module="stilts.prepare", cache=stilts_cache, cwd=tmp_path)
    assert prepared.returncode == 0, out(prepared)
    assert "stilts.prepare: 3 run(s)" in out(prepared)  # the grid's setups, the declared one among them
    assert re.search(r"my_nli train/en: ok \(96 rows\)", out(prepared)), out(prepared)
    typo = stilts("experiment=quickstart", "+intermediate=typo_nli", "target=xnli", searchpath, f"paths.output_dir={tmp_path}",
                  cache=stilts_cache, cwd=tmp_path)
    errors = [line for line in typo.stderr.splitlines() if line.startswith("error:")]
    assert typo.returncode == 2 and len(errors) == 1, out(typo)
    assert re.fullmatch(r"error: .*typo_nli.yaml: task.columns.label names 'gold', which .*nli does not have; "
                        r"its columns: premise, hypothesis, label", errors[0]), errors
