"""The format readers on the real data slices, the task registry, bad input and the Hub conversion."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import stilts.tasks

from stilts.errors import StiltsError
# Importing every task module registers all six tasks whatever the import order: with only some
# modules imported first, the lazy registry loads nothing more (see test_registry_after_direct_import).
from stilts.tasks import get_task, hellaswag, mnli, squad, task_names, tydiqa, udpos, xnli  # noqa: F401
from stilts.tasks.common.readers import read_glue_tsv, read_pair_tsv, read_squad_json, read_token_tsv
from stilts.tasks.udpos import read_conllu
from stilts.tasks.mnli import NLI_LABELS
from stilts.tasks.common.sources import find_files, load_examples, read_files
from stilts.tasks.udpos import UPOS


def _count_squad(path: Path) -> tuple[int, int]:
    """(questions, questions without answers), counted straight from the JSON."""
    document = json.loads(path.read_text(encoding="utf-8"))
    questions = [qa for article in document["data"] for p in article["paragraphs"] for qa in p["qas"]]
    empty = [qa for qa in questions if qa.get("is_impossible") or not qa.get("answers")]
    return len(questions), len(empty)


def _check_squad_examples(path: Path, examples: list[dict]) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    questions = [(p["context"], qa) for article in document["data"] for p in article["paragraphs"] for qa in p["qas"]]
    assert [e["id"] for e in examples] == [str(qa["id"]) for _, qa in questions]
    for example, (context, qa) in zip(examples, questions):
        assert example["context"] == context
        assert example["question"] == qa["question"]
        answers = example["answers"]
        assert len(answers["text"]) == len(answers["answer_start"])
        for text, start in zip(answers["text"], answers["answer_start"]):
            assert context[start:start + len(text)] == text


# -- QA JSON ---------------------------------------------------------------------------------------
def test_read_squad_json_xquad_en(shared_data: Path) -> None:
    path = shared_data / "xquad" / "xquad.en.json"
    examples = read_squad_json(path)
    assert len(examples) == 1190 == _count_squad(path)[0]
    assert all(example["answers"]["text"] for example in examples)  # SQuAD v1.1: every question answered
    _check_squad_examples(path, examples)


def test_read_squad_json_tydiqa_en_train(shared_data: Path) -> None:
    path = shared_data / "tydiqa_goldp" / "tydiqa.goldp.en.train.json"
    examples = read_squad_json(path)
    questions, empty = _count_squad(path)
    assert len(examples) == questions > 0
    assert sum(1 for e in examples if not e["answers"]["text"]) == empty
    _check_squad_examples(path, examples)


def test_read_squad_json_v2_subset(shared_data: Path) -> None:
    path = shared_data / "squad_v2_subset" / "dev-v2.0.Normans_Rhine.json"
    examples = read_squad_json(path)
    assert len(examples) == 706
    unanswerable = [e for e in examples if not e["answers"]["text"]]
    assert len(unanswerable) == 320
    assert all(e["answers"] == {"text": [], "answer_start": []} for e in unanswerable)
    assert _count_squad(path) == (706, 320)
    _check_squad_examples(path, examples)


# -- pair / GLUE tsv -------------------------------------------------------------------------------
def test_read_pair_tsv_xnli_de(shared_data: Path) -> None:
    path = shared_data / "xnli" / "dev-de.tsv"
    examples = read_pair_tsv(path, NLI_LABELS)
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(examples) == len(lines) == 2490
    assert {e["label"] for e in examples} == set(NLI_LABELS)
    assert examples[0]["text_a"] == lines[0][0] and examples[0]["text_b"] == lines[0][1]
    assert examples[0]["label"] == "neutral"
    assert len({e["id"] for e in examples}) == 2490


def test_read_pair_tsv_pawsx(shared_data: Path) -> None:
    for language in ("en", "de", "ja"):
        path = shared_data / "pawsx" / f"dev-{language}.tsv"
        examples = read_pair_tsv(path, labels=("0", "1"))
        assert len(examples) == 2000
        assert {e["label"] for e in examples} == {"0", "1"}


def test_read_glue_tsv_mnli(shared_data: Path) -> None:
    path = shared_data / "mnli" / "dev_matched.first51.tsv"
    examples = read_glue_tsv(path, NLI_LABELS, text_a="sentence1", text_b="sentence2", label="gold_label")
    assert len(examples) == 51
    header, *rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    a, b, y = header.index("sentence1"), header.index("sentence2"), header.index("gold_label")
    assert [(e["text_a"], e["text_b"], e["label"]) for e in examples] == [(r[a], r[b], r[y]) for r in rows]
    assert examples[0]["label"] == "neutral"
    assert examples[0]["text_a"] == "The new rights are nice enough"


# -- tagging ---------------------------------------------------------------------------------------
def _tsv_blocks(path: Path) -> list[list[list[str]]]:
    blocks, block = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            block.append(line.split("\t"))
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


def test_read_token_tsv_udpos_dev_en(shared_data: Path) -> None:
    path = shared_data / "udpos_xtreme_format" / "dev-en.tsv"
    examples = read_token_tsv(path, UPOS)
    blocks = _tsv_blocks(path)
    assert len(examples) == len(blocks) > 1000
    for example, block in zip(examples, blocks):
        assert example["tokens"] == [fields[0] for fields in block]
        assert example["tags"] == [fields[1] for fields in block]
    assert examples[0]["tokens"][:3] == ["From", "the", "AP"]
    assert examples[0]["tags"][:3] == ["ADP", "DET", "PROPN"]


def test_read_token_tsv_unlabelled_test(shared_data: Path) -> None:
    path = shared_data / "udpos_xtreme_format" / "test-en.nolabel.tsv"
    examples = read_token_tsv(path, UPOS)
    blocks = _tsv_blocks(path)
    assert len(examples) == len(blocks) > 0
    assert all(e["tags"] is None for e in examples)
    assert [e["tokens"] for e in examples] == [[fields[0] for fields in block] for block in blocks]


def test_read_conllu_en_ewt_dev(shared_data: Path) -> None:
    path = shared_data / "udpos" / "v2.5" / "UD_English-EWT" / "en_ewt-ud-dev.conllu"
    examples = read_conllu(path, UPOS)
    text = path.read_text(encoding="utf-8")
    assert len(examples) == len(re.findall(r"^# sent_id", text, flags=re.M))
    # independently: the integer-ID lines of each sentence, in order
    sentences, current = [], []
    for line in text.splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
        elif not line.startswith("#"):
            fields = line.split("\t")
            if fields[0].isdigit():
                current.append((fields[1], fields[3]))
    if current:
        sentences.append(current)
    assert [list(zip(e["tokens"], e["tags"])) for e in examples] == sentences
    integer_lines = len(re.findall(r"^\d+\t", text, flags=re.M))
    assert sum(len(e["tokens"]) for e in examples) == integer_lines
    assert re.search(r"^\d+\.\d+\t", text, flags=re.M)  # the file has empty nodes, which were skipped


def test_read_conllu_matches_xtreme_processed_dev_en(shared_data: Path) -> None:
    """XTREME's dev-en.tsv merges the English treebanks, EWT first: reading the EWT CoNLL-U must give
    exactly its first sentences (same words, same tags)."""
    conllu = read_conllu(shared_data / "udpos" / "v2.5" / "UD_English-EWT" / "en_ewt-ud-dev.conllu", UPOS)
    xtreme = read_token_tsv(shared_data / "udpos_xtreme_format" / "dev-en.tsv", UPOS)
    assert [(e["tokens"], e["tags"]) for e in conllu] == [(e["tokens"], e["tags"]) for e in xtreme[:len(conllu)]]


def test_read_conllu_fuses_multiword_tokens_and_skips_empty_nodes(tmp_path: Path) -> None:
    # XTREME's conversion: a multi-word token keeps its fused form and the UPOS of its word nearest
    # the root (here "do", the root); empty nodes (2.1) are dropped.
    path = tmp_path / "x.conllu"
    rows = [
        "# sent_id = 1",
        "1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_",
        "1\tdo\tdo\tAUX\t_\t_\t0\troot\t_\t_",
        "2\tn't\tnot\tPART\t_\t_\t1\tadvmod\t_\t_",
        "2.1\tgo\tgo\tVERB\t_\t_\t_\t_\t_\t_",
        "3\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_",
        "",
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert read_conllu(path, UPOS) == [{"id": "x-1", "tokens": ["don't", "."], "tags": ["AUX", "PUNCT"]}]


# -- registry --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, head", [
    ("squad", "span_qa"), ("mnli", "classification"), ("hellaswag", "multiple_choice"),
    ("xnli", "classification"), ("tydiqa", "span_qa"), ("udpos", "tagging"),
])
def test_registry_heads(name: str, head: str) -> None:
    spec = get_task(name)
    assert spec.name == name
    assert spec.head == head
    assert name in task_names()


def test_registry_languages() -> None:
    assert len(get_task("xnli").languages) == 15
    assert set(get_task("xnli").languages) >= {"en", "de", "fr", "zh", "ar", "sw", "ur", "th"}
    assert get_task("tydiqa").languages == ("en", "ar", "bn", "fi", "id", "ko", "ru", "sw", "te")
    assert len(get_task("udpos").languages) == 33
    assert len(set(get_task("udpos").languages)) == 33
    assert get_task("udpos").labels == UPOS and len(UPOS) == 17
    assert get_task("squad").allow_no_answer and not get_task("tydiqa").allow_no_answer
    assert get_task("squad").languages == ("en",)


@pytest.mark.cli
def test_registry_after_direct_import() -> None:
    code = ("import stilts.tasks.mnli\n"
            "from stilts.tasks import task_names\n"
            "print(','.join(task_names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    modules = {p.stem for p in Path(stilts.tasks.__file__).parent.glob("*.py")
               if p.stem != "__init__" and p.stem not in stilts.tasks.NOT_TASKS}
    declared = {"boolq", "openbookqa", "adversarial_qa"}  # conf/intermediate/<name>.yaml with a task: node
    expected = sorted(modules | declared)
    assert out.split(",") == expected
    assert {"anli_plus", "ccg", "xcopa", "mlqa", "xnli"} <= set(expected)


def test_unknown_task_lists_valid_tasks() -> None:
    with pytest.raises(StiltsError) as info:
        get_task("nosuchtask")
    message = str(info.value)
    assert "nosuchtask" in message
    for name in ("squad", "mnli", "hellaswag", "xnli", "tydiqa", "udpos"):
        assert name in message


# -- bad input -------------------------------------------------------------------------------------
def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "data": [\n    {"title": "x",,}\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(StiltsError, match=re.escape(f"{path}:3")):
        read_squad_json(path)


def test_misplaced_answer_names_question(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    document = {"data": [{"title": "t", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q-ok", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]},
        {"id": "q-bad-17", "question": "What?", "answers": [{"text": "Paris", "answer_start": 3}]},
    ]}]}]}
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(StiltsError) as info:
        read_squad_json(path)
    assert str(path) in str(info.value)
    assert "q-bad-17" in str(info.value)


def test_pair_tsv_wrong_column_count(tmp_path: Path) -> None:
    path = tmp_path / "dev-xx.tsv"
    path.write_text("a\tb\tneutral\na only\n", encoding="utf-8")
    with pytest.raises(StiltsError, match=re.escape(f"{path}:2")):
        read_pair_tsv(path, NLI_LABELS)
    path.write_text("a\tb\tneutral\nx\ty\tz\tw\n", encoding="utf-8")
    with pytest.raises(StiltsError, match=re.escape(f"{path}:2")):
        read_pair_tsv(path, NLI_LABELS)


def test_label_outside_label_set(tmp_path: Path) -> None:
    path = tmp_path / "dev-xx.tsv"
    path.write_text("a\tb\tneutral\nc\td\tentailment\ne\tf\tmaybe\n", encoding="utf-8")
    with pytest.raises(StiltsError) as info:
        read_pair_tsv(path, NLI_LABELS)
    assert f"{path}:3" in str(info.value)
    assert "maybe" in str(info.value)
    tags = tmp_path / "dev-xx.conllu.tsv"
    tags.write_text("The\tDET\ncat\tNOUNS\n", encoding="utf-8")
    with pytest.raises(StiltsError, match=re.escape(f"{tags}:2")):
        read_token_tsv(tags, UPOS)


def test_glue_tsv_missing_header_column(tmp_path: Path) -> None:
    path = tmp_path / "dev_matched.tsv"
    path.write_text("index\tsentence1\tlabel\n0\ta\tneutral\n", encoding="utf-8")
    with pytest.raises(StiltsError) as info:
        read_glue_tsv(path, NLI_LABELS, text_a="sentence1", text_b="sentence2", label="gold_label")
    message = str(info.value)
    assert f"{path}:1" in message
    assert "sentence2" in message and "gold_label" in message


def test_conllu_nine_columns(tmp_path: Path) -> None:
    path = tmp_path / "en_x-ud-dev.conllu"
    path.write_text("# sent_id = 1\n1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n2\t!\t!\tPUNCT\t_\t_\t1\tpunct\t_\n\n",
                    encoding="utf-8")
    with pytest.raises(StiltsError, match=re.escape(f"{path}:3")):
        read_conllu(path, UPOS)


def test_empty_split_through_read_files(tmp_path: Path) -> None:
    spec = get_task("xnli")
    (tmp_path / "xnli").mkdir()
    (tmp_path / "xnli" / "dev-en.tsv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(StiltsError) as info:
        read_files(spec, "dev", "en", tmp_path)
    message = str(info.value)
    assert "xnli" in message and "dev" in message and str(tmp_path) in message and "no examples" in message


def test_missing_file_through_find_files(tmp_path: Path) -> None:
    spec = get_task("xnli")
    with pytest.raises(StiltsError) as info:
        find_files(spec, "dev", "de", tmp_path)
    assert str(tmp_path / "xnli" / "dev-de.tsv") in str(info.value)
    assert "experiment=quickstart" in str(info.value)
    with pytest.raises(StiltsError, match="no 'test' split"):
        find_files(get_task("squad"), "test", "en", tmp_path)


def test_find_files_udpos_conllu_fallback(shared_data: Path) -> None:
    files = find_files(get_task("udpos"), "dev", "en", shared_data)
    assert files == [shared_data / "udpos" / "v2.5" / "UD_English-EWT" / "en_ewt-ud-dev.conllu"]
    examples = load_examples(get_task("udpos"), "dev", "en", "files", shared_data)
    assert len(examples) == 2002


def test_load_examples_bad_source_and_root(tmp_path: Path) -> None:
    spec = get_task("xnli")
    with pytest.raises(StiltsError, match="data.source"):
        load_examples(spec, "dev", "en", "ftp", tmp_path)
    with pytest.raises(StiltsError, match="data.root"):
        load_examples(spec, "dev", "en", "files", None)
    with pytest.raises(StiltsError, match="not a folder"):
        load_examples(spec, "dev", "en", "files", tmp_path / "absent")


# -- Hub conversion --------------------------------------------------------------------------------
def test_hub_xnli_conversion(monkeypatch) -> None:
    import datasets

    calls = []
    features = datasets.Features({
        "premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
    })
    table = datasets.Dataset.from_dict(
        {"premise": ["p0", "p1", "p2"], "hypothesis": ["h0", "h1", "h2"], "label": [0, 1, 2]}, features=features)

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return table

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_examples(get_task("xnli"), "test", "de", "hub", None)
    assert calls == [("facebook/xnli", "de", "test")]
    assert [(e["text_a"], e["text_b"], e["label"]) for e in examples] == [
        ("p0", "h0", "entailment"), ("p1", "h1", "neutral"), ("p2", "h2", "contradiction")]
    assert len({e["id"] for e in examples}) == 3


def test_hub_udpos_conversion(monkeypatch) -> None:
    import datasets

    calls = []
    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "pos_tags": datasets.Sequence(datasets.ClassLabel(names=list(UPOS))),
    })
    table = datasets.Dataset.from_dict({
        "tokens": [["Der", "Hund", "bellt", "."], ["Ja"]],
        "pos_tags": [[UPOS.index("DET"), UPOS.index("NOUN"), UPOS.index("VERB"), UPOS.index("PUNCT")],
                     [UPOS.index("INTJ")]],
    }, features=features)

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return table

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_examples(get_task("udpos"), "dev", "de", "hub", None)
    assert calls == [("google/xtreme", "udpos.German", "validation")]
    assert [(e["tokens"], e["tags"]) for e in examples] == [
        (["Der", "Hund", "bellt", "."], ["DET", "NOUN", "VERB", "PUNCT"]), (["Ja"], ["INTJ"])]


def test_hub_unreachable_names_dataset_and_quickstart(monkeypatch) -> None:
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'facebook/xnli' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(StiltsError) as info:
        load_examples(get_task("xnli"), "test", "sw", "hub", None)
    message = str(info.value)
    assert "facebook/xnli (sw) test" in message and "\n" not in message
    assert "experiment=quickstart" in message and "python -m stilts.prepare" in message
    assert "ConnectionError" in message
    assert "more detail" not in message  # first line of the cause only


def test_hub_missing_split(monkeypatch) -> None:
    with pytest.raises(StiltsError, match="no Hugging Face Hub source"):
        load_examples(get_task("squad"), "test", "en", "hub", None)

