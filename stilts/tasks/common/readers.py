"""Readers for the on-disk formats several tasks share, each turning one file into stilts examples
(a format only one task reads lives beside that task).

Example shapes, one per head:
  classification:  {"id", "text_a", "text_b", "label"}
  span_qa:         {"id", "context", "question", "answers": {"text": [...], "answer_start": [...]}}
  tagging:         {"id", "tokens": [...], "tags": [...]}
  multiple_choice: {"id", "context", "choices": [...], "label": int}
  dual_encoder:    {"id", "query", "candidate", "candidate_context": str | None, "candidate_id"}
A label of None means the file carries no gold (e.g. XTREME's label-stripped test files).
Every malformed input raises StiltsError naming the file and line or example id.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.tasks.spec import Example

log = logging.getLogger(__name__)


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines without their newline; a file that is not UTF-8 is a clear error."""
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise StiltsError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def read_text_lines(path: Path) -> list[Example]:
    """Plain text for masked-LM training: one sentence or paragraph per line (Wikipedia / CC-100
    extracts); blank lines are skipped."""
    return [{"id": f"{path.stem}-{number}", "text": line.strip()}
            for number, line in numbered_lines(path) if line.strip()]


def check_label(label: str, labels: Sequence[str] | None, where: str) -> str:
    """`labels=None` accepts any label (open label sets such as CCG supertags)."""
    if labels is not None and label not in labels:
        raise StiltsError(f"{where}: label {label!r} is not in the label set {list(labels)}")
    return label


def read_pair_tsv(path: Path, labels: Sequence[str]) -> list[Example]:
    """XTREME's sentence-pair tsv (XNLI, PAWS-X): `text_a<TAB>text_b[<TAB>label]`, no header."""
    examples = []
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"{path}:{number}"
        if len(fields) not in (2, 3):
            raise StiltsError(f"{where}: expected 2 or 3 tab-separated columns, found {len(fields)}")
        label = check_label(fields[2].strip(), labels, where) if len(fields) == 3 else None
        examples.append({"id": f"{path.stem}-{number}", "text_a": fields[0], "text_b": fields[1], "label": label})
    return examples


def read_translated_pair_tsv(path: Path, labels: Sequence[str], renamed: Mapping[str, str] | None = None) -> list[Example]:
    """XTREME's translate-train pairs (gs://xtreme_translations/{XNLI,PAWSX}/translate-train/
    en-<lang>-translated.tsv): no header, `en_a<TAB>en_b<TAB>a<TAB>b<TAB>label`; the translated pair
    is trained on. As TFDS's xtreme_xnli / xtreme_pawsx readers do, rows with a label outside the
    task's set are dropped ("some rows have been wrongly populated"), and counted in the log;
    `renamed` maps the file's label names to the task's (XNLI: contradictory -> contradiction)."""
    examples, dropped = [], []
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        label = (renamed or {}).get(fields[-1].strip(), fields[-1].strip())
        if len(fields) != 5 or label not in labels:
            dropped.append(number)
            continue
        examples.append({"id": f"{path.stem}-{number}", "text_a": fields[2], "text_b": fields[3], "label": label})
    if dropped:
        log.warning("%s: dropped %d malformed row(s) (not 5 columns, or a label outside %s), e.g. line(s) %s",
                    path, len(dropped), list(labels), ", ".join(map(str, dropped[:5])))
    if not examples and dropped:
        raise StiltsError(f"{path}: no row has the translate-train layout en_a, en_b, a, b, label with a label in {list(labels)}")
    return examples


def read_glue_tsv(path: Path, labels: Sequence[str], text_a: str, text_b: str, label: str) -> list[Example]:
    """GLUE-style tsv with a header row; columns are found by name (MNLI: sentence1, sentence2, gold_label)."""
    rows = numbered_lines(path)
    try:
        _, header_line = next(rows)
    except StopIteration:
        raise StiltsError(f"{path}: the file is empty") from None
    header = header_line.split("\t")
    missing = [name for name in (text_a, text_b, label) if name not in header]
    if missing:
        raise StiltsError(f"{path}:1: header lacks column(s) {missing}; found {header}")
    a, b, y = header.index(text_a), header.index(text_b), header.index(label)
    examples = []
    for number, line in rows:
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"{path}:{number}"
        if len(fields) != len(header):
            raise StiltsError(f"{where}: expected {len(header)} columns as in the header, found {len(fields)}")
        examples.append({
            "id": f"{path.stem}-{number}",
            "text_a": fields[a],
            "text_b": fields[b],
            "label": check_label(fields[y].strip(), labels, where),
        })
    return examples


def load_json(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise StiltsError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    except UnicodeDecodeError as error:
        raise StiltsError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


_KINDS = {list: "a list", str: "a string", int: "an integer", (str, int): "a string or integer"}


def _squad_field(value: object, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """value[key] when value is an object holding `kind` there; otherwise an error naming the place."""
    if not isinstance(value, dict) or not isinstance(value.get(key), kind):
        raise StiltsError(f"{where} must be an object with {key!r} ({_KINDS[kind]}) (SQuAD JSON format)")
    return value[key]


def read_squad_json(path: Path, drop_misaligned: bool = False) -> list[Example]:
    """SQuAD v1.1/v2.0 JSON (also XQuAD, MLQA, TyDiQA-GoldP); answers must sit at answer_start.
    Machine-translated files (XTREME's translate-train) have answers the translation moved:
    `drop_misaligned` drops such questions (counted in the log) instead of failing, as TFDS does."""
    examples, dropped = [], []
    for a, article in enumerate(_squad_field(load_json(path), "data", list, f"{path}: the top level")):
        for p, paragraph in enumerate(_squad_field(article, "paragraphs", list, f"{path}: data[{a}]")):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            context = _squad_field(paragraph, "context", str, where)
            for q, qa in enumerate(_squad_field(paragraph, "qas", list, where)):
                qid = _squad_field(qa, "id", (str, int), f"{where}.qas[{q}]")
                question = _squad_field(qa, "question", str, f"{where}.qas[{q}]")
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                if not isinstance(answers, list):
                    raise StiltsError(f"{path}: question {qid}: 'answers' must be a list (SQuAD JSON format)")
                texts, starts = [], []
                for answer in answers:
                    text = _squad_field(answer, "text", str, f"{path}: question {qid}: an answer")
                    start = _squad_field(answer, "answer_start", int, f"{path}: question {qid}: an answer")
                    if drop_misaligned and (start < 0 or context[start:start + len(text)] != text):
                        dropped.append(str(qid))
                        break
                    if context[start:start + len(text)] != text:
                        raise StiltsError(
                            f"{path}: question {qid}: answer {text!r} is not at answer_start {start} of its context "
                            f"(found {context[start:start + len(text)]!r}); fix the offset or the text"
                        )
                    texts.append(text)
                    starts.append(start)
                if dropped and dropped[-1] == str(qid):
                    continue
                examples.append({"id": str(qid), "context": context, "question": question,
                                 "answers": {"text": texts, "answer_start": starts}})
    if dropped:
        log.warning("%s: dropped %d question(s) whose answer is not at its answer_start (translation), e.g. %s",
                    path, len(dropped), ", ".join(dropped[:3]))
    return examples


# XTREME's machine-translated SQuAD-format files (SQuAD, TyDiQA-GoldP translate-train/-dev).
TRANSLATED_SQUAD = (("xtreme_translations/*/translate-*/*.json", partial(read_squad_json, drop_misaligned=True)),)


def qa_has_gold(examples: Sequence[Example]) -> bool:
    """XTREME strips QA test gold to one empty answer at 0; such a file cannot be scored."""
    return any(text for example in examples for text in example["answers"]["text"])


def read_token_tsv(path: Path, labels: Sequence[str]) -> list[Example]:
    """XTREME's tagging tsv: `token<TAB>tag` per line, blank line between sentences; tag-less = no gold."""
    examples: list[Example] = []
    tokens: list[str] = []
    tags: list[str | None] = []

    def close(line_number: int) -> None:
        if tokens:
            gold = None if any(tag is None for tag in tags) else list(tags)
            examples.append({"id": f"{path.stem}-{line_number}", "tokens": list(tokens), "tags": gold})
            tokens.clear()
            tags.clear()

    number = 0
    for number, line in numbered_lines(path):
        if not line.strip():
            close(number)
            continue
        fields = line.split("\t")
        if len(fields) > 2:
            raise StiltsError(f"{path}:{number}: expected `token<TAB>tag`, found {len(fields)} columns")
        tokens.append(fields[0])
        tags.append(check_label(fields[1].strip(), labels, f"{path}:{number}") if len(fields) == 2 else None)
    close(number + 1)
    return examples


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object is named."""
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise StiltsError(f"{path}:{number}: invalid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise StiltsError(f"{path}:{number}: expected a JSON object per line")
        yield number, row


def require_keys(row: dict, keys: Sequence[str], where: str) -> None:
    missing = [key for key in keys if key not in row]
    if missing:
        raise StiltsError(f"{where}: missing key(s) {missing}")


def choice_label(label: object, count: int, where: str) -> int | None:
    if label in (None, ""):
        return None
    if not str(label).strip().isdigit() or not 0 <= int(label) < count:
        raise StiltsError(f"{where}: label {label!r} is not a choice index in 0..{count - 1}")
    return int(label)


