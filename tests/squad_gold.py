"""SQuAD-format gold as the official evaluation scripts read it ({question id: [answer texts]}), kept
apart from stilts' own reader (stilts.tasks.common.readers) so metric tests check against an
independent reading of the real files."""

from __future__ import annotations

import json
from pathlib import Path


def load_squad_gold(path: str | Path) -> dict[str, list[str]]:
    """Read SQuAD-format JSON (v1.1 or v2.0) into {question id: [answer texts]}, in file order.

    Raises ValueError naming the file and the problem, so the caller can show it to the user.
    """
    try:
        with open(path, encoding="utf-8") as f:
            dataset = json.load(f)
        return _gold_from_squad(dataset)
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{path}: not usable as SQuAD gold: {exc}") from exc


def _gold_from_squad(dataset: object) -> dict[str, list[str]]:
    gold: dict[str, list[str]] = {}
    for i, article in enumerate(_list_field(dataset, "data", "top level")):
        for j, paragraph in enumerate(_list_field(article, "paragraphs", f"data[{i}]")):
            for k, qa in enumerate(_list_field(paragraph, "qas", f"data[{i}].paragraphs[{j}]")):
                where = f"data[{i}].paragraphs[{j}].qas[{k}]"
                qid = _field(qa, "id", where)
                if not isinstance(qid, str):
                    raise ValueError(f"{where}.id is {qid!r}, not a string")
                if qid in gold:
                    raise ValueError(
                        f"question id {qid!r} occurs again at {where}; predictions could not be told apart"
                    )
                gold[qid] = _answer_texts(qa, where)
    if not gold:
        raise ValueError("the file contains no questions")
    return gold


def _answer_texts(qa: dict, where: str) -> list[str]:
    """SQuAD v2 always lists answers (empty when impossible); tolerate the key's absence only then."""
    if "answers" not in qa and qa.get("is_impossible") is True:
        return []
    texts = []
    for m, answer in enumerate(_list_field(qa, "answers", where)):
        text = _field(answer, "text", f"{where}.answers[{m}]")
        if not isinstance(text, str):
            raise ValueError(f"{where}.answers[{m}].text is {text!r}, not a string")
        texts.append(text)
    return texts


def _field(obj: object, key: str, where: str) -> object:
    if not isinstance(obj, dict):
        raise ValueError(f"{where} is a {type(obj).__name__}, expected an object with key {key!r}")
    if key not in obj:
        raise ValueError(f"{where} has no key {key!r}")
    return obj[key]


def _list_field(obj: object, key: str, where: str) -> list:
    value = _field(obj, key, where)
    if not isinstance(value, list):
        raise ValueError(f"{where}: {key!r} is a {type(value).__name__}, expected a list")
    return value
