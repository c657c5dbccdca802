"""Structurally wrong input files end in one StiltsError naming the file (and line) and what is expected."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from stilts.errors import StiltsError
from stilts.tasks import get_task
from stilts.tasks.common.readers import read_squad_json
from stilts.tasks.udpos import read_conllu
from stilts.tasks.hellaswag import read_hellaswag_jsonl
from stilts.tasks.common.sources import read_files
from stilts.tasks.udpos import UPOS


def _write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _message(call, *args) -> str:
    with pytest.raises(StiltsError) as info:
        call(*args)
    return str(info.value)


# -- SQuAD JSON, through each task that reads it -----------------------------------------------------
SQUAD_FILES = {  # task -> (split, language, file under data.root)
    "squad": ("dev", "en", "squad/dev-v2.0.json"),
    "xquad": ("test", "de", "xquad/xquad.de.json"),
    "mlqa": ("dev", "es", "mlqa/MLQA_V1/dev/dev-context-es-question-es.json"),
    "tydiqa": ("dev", "fi", "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.fi.dev.json"),
}
PARAGRAPH = {"context": "Paris is in France.", "qas": []}
BAD_SQUAD = [  # (document, what the message must say)
    ({"version": "v2.0"}, "the top level must be an object with 'data'"),
    ([1, 2], "the top level must be an object with 'data'"),
    ({"data": [1]}, "data[0] must be an object with 'paragraphs'"),
    ({"data": [{"title": "x"}]}, "data[0] must be an object with 'paragraphs'"),
    ({"data": [{"title": "x", "paragraphs": [{"qas": []}]}]}, "data[0].paragraphs[0] must be an object with 'context'"),
    ({"data": [{"paragraphs": ["text"]}]}, "data[0].paragraphs[0] must be an object with 'context'"),
    ({"data": [{"paragraphs": [{"context": "c"}]}]}, "data[0].paragraphs[0] must be an object with 'qas'"),
    ({"data": [{"paragraphs": [{**PARAGRAPH, "qas": ["q"]}]}]}, "paragraphs[0].qas[0] must be an object with 'id'"),
    ({"data": [{"paragraphs": [{**PARAGRAPH, "qas": [{"id": "q1"}]}]}]}, "qas[0] must be an object with 'question'"),
    ({"data": [{"paragraphs": [{**PARAGRAPH, "qas": [{"id": "q1", "question": "?", "answers": "Paris"}]}]}]},
     "question q1: 'answers' must be a list"),
    ({"data": [{"paragraphs": [{**PARAGRAPH, "qas": [{"id": "q1", "question": "?", "answers": [["Paris"]]}]}]}]},
     "question q1: an answer must be an object with 'text'"),
    ({"data": [{"paragraphs": [{**PARAGRAPH, "qas": [{"id": "q1", "question": "?",
                                                      "answers": [{"text": "Paris", "answer_start": "0"}]}]}]}]},
     "question q1: an answer must be an object with 'answer_start'"),
]


@pytest.mark.parametrize("task", sorted(SQUAD_FILES))
@pytest.mark.parametrize("document, expected", BAD_SQUAD)
def test_bad_squad_structure_names_file_and_problem(tmp_path: Path, task: str, document, expected: str) -> None:
    split, language, relative = SQUAD_FILES[task]
    path = _write(tmp_path, relative, json.dumps(document))
    message = _message(read_files, get_task(task), split, language, tmp_path)
    assert message.startswith(f"{path}: ") and expected in message and "SQuAD JSON format" in message


def test_good_squad_still_reads(tmp_path: Path) -> None:
    qa = {"id": 7, "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]}
    path = _write(tmp_path, "x.json", json.dumps({"data": [{"paragraphs": [{**PARAGRAPH, "qas": [qa]}]}]}))
    assert read_squad_json(path) == [{"id": "7", "context": PARAGRAPH["context"], "question": "Where?",
                                      "answers": {"text": ["France"], "answer_start": [12]}}]


def test_squad_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'{"data": ["\xff"]}')
    assert _message(read_squad_json, path).startswith(f"{path}: not UTF-8")


# -- CoNLL-U ID column ---------------------------------------------------------------------------------
def _conllu_row(word_id: str, form: str = "Hi", upos: str = "INTJ") -> str:
    return "\t".join([word_id, form, form.lower(), upos, "_", "_", "0", "root", "_", "_"])


@pytest.mark.parametrize("bad_id", ["x", "1-x", "1.", "-1", "1-2-3", " 1"])
def test_conllu_bad_id_names_line(tmp_path: Path, bad_id: str) -> None:
    path = _write(tmp_path, "udpos/UD_English/en_x-ud-dev.conllu",
                  "\n".join(["# sent_id = 1", _conllu_row("1"), _conllu_row(bad_id, "word"), "", ""]))
    message = _message(read_files, get_task("udpos"), "dev", "en", tmp_path)
    assert message.startswith(f"{path}:3: ") and repr(bad_id) in message
    assert "range (1-2)" in message and "empty node (1.1)" in message


def test_conllu_legal_ids_still_read(tmp_path: Path) -> None:
    rows = [_conllu_row("1-2", "Hi!"), _conllu_row("1"), _conllu_row("1.1", "go", "VERB"), _conllu_row("2", "!", "PUNCT")]
    path = _write(tmp_path, "en_x-ud-dev.conllu", "\n".join(rows) + "\n\n")
    assert read_conllu(path, UPOS) == [{"id": "en_x-ud-dev-1", "tokens": ["Hi!"], "tags": ["INTJ"]}]


# -- JSONL readers -------------------------------------------------------------------------------------
HELLASWAG_ROW = {"ind": 1, "ctx": "A man", "endings": ["a", "b", "c", "d"], "label": 0}


@pytest.mark.parametrize("line, expected", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object per line"),
    (json.dumps({**HELLASWAG_ROW, "endings": "abcd"}), "needs 'ctx' and a list of 'endings'"),
    (json.dumps({**HELLASWAG_ROW, "label": 7}), "label 7 is not a choice index"),
])
def test_bad_jsonl_line_names_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    path = _write(tmp_path, "hellaswag/hellaswag_val.jsonl", f"{json.dumps(HELLASWAG_ROW)}\n\n{line}\n")
    message = _message(read_hellaswag_jsonl, path)
    assert message.startswith(f"{path}:3: ") and expected in message


@pytest.mark.parametrize("choices", [["A", "B"], [{"label": "A"}, {"label": "B", "text": "b"}], "AB"])
def test_commonsenseqa_bad_choices(tmp_path: Path, choices) -> None:
    row = {"id": "q1", "question": {"stem": "Why?", "choices": choices}, "answerKey": "A"}
    path = _write(tmp_path, "commonsenseqa/dev_rand_split.jsonl", json.dumps(row) + "\n")
    message = _message(read_files, get_task("commonsenseqa"), "dev", "en", tmp_path)
    assert message.startswith(f"{path}:1: ") and "'label' and a 'text'" in message


# -- the safety net in read_files ------------------------------------------------------------------------
def test_unforeseen_reader_error_names_file_and_task(tmp_path: Path) -> None:
    # An ANLI label that is a list is not foreseen by the reader (unhashable in the e/n/c lookup).
    path = _write(tmp_path, "anli/anli_v1.0/R1/dev.jsonl",
                  json.dumps({"uid": "a", "context": "c", "hypothesis": "h", "label": ["e"]}) + "\n")
    spec = get_task("anli_plus")
    message = _message(read_files, spec, "dev", "en", tmp_path)
    assert message.startswith(f"{path}: malformed anli_plus file (TypeError: ")
    assert message.endswith(f"expected {spec.description}")


@pytest.mark.parametrize("fail, kind", [
    (lambda path: {}["context"], "KeyError"),
    (lambda path: [][0], "IndexError"),
    (lambda path: None.get("x"), "AttributeError"),
    (lambda path: int("x"), "ValueError"),
    (lambda path: json.loads("{"), "JSONDecodeError"),
])
def test_safety_net_covers_each_error_type(tmp_path: Path, fail, kind: str) -> None:
    spec = dataclasses.replace(get_task("xnli"), reader=fail)
    path = _write(tmp_path, "xnli/dev-en.tsv", "a\tb\tentailment\n")
    message = _message(read_files, spec, "dev", "en", tmp_path)
    assert re.match(re.escape(f"{path}: malformed xnli file ({kind}: "), message)


def test_safety_net_keeps_reader_messages(tmp_path: Path) -> None:
    path = _write(tmp_path, "xnli/dev-en.tsv", "only one column\n")
    message = _message(read_files, get_task("xnli"), "dev", "en", tmp_path)
    assert message.startswith(f"{path}:1: expected 2 or 3 tab-separated columns")
