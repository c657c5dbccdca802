"""Readers for the on-disk formats of the tasks, each turning one file into stilts examples.

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

import csv
import json
import logging
import re
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


def _check_label(label: str, labels: Sequence[str] | None, where: str) -> str:
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
        label = _check_label(fields[2].strip(), labels, where) if len(fields) == 3 else None
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
            "label": _check_label(fields[y].strip(), labels, where),
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
        tags.append(_check_label(fields[1].strip(), labels, f"{path}:{number}") if len(fields) == 2 else None)
    close(number + 1)
    return examples


def _depth(word: int, heads: dict[int, int]) -> int:
    """Number of ancestors of a word (a broken HEAD chain stops the walk instead of looping)."""
    depth, seen = 0, {word}
    while heads.get(word, 0) != 0 and heads[word] not in seen:
        word = heads[word]
        seen.add(word)
        depth += 1
    return depth


# ud-conversion-tools' POS precedence, which XTREME's conversion uses to choose the head of a
# multi-word token when several of its words are equally close to the root.
_FUSED_HEAD_PRECEDENCE = {
    "default": "VERB NOUN PROPN PRON ADJ NUM ADV INTJ AUX ADP DET PART CCONJ SCONJ X PUNCT".split(),
    "es": "VERB AUX PRON ADP DET".split(),
    "fr": "VERB AUX PRON NOUN ADJ ADV ADP DET PART SCONJ CONJ".split(),
    "it": "VERB AUX ADV PRON ADP DET INTJ".split(),
}


def _fused_head(span: list[int], heads: dict[int, int], tags: dict[int, str], language: str) -> int:
    """The word of a multi-word token nearest the root; ties go to the language's POS precedence."""
    depths = {word: _depth(word, heads) for word in span}
    highest = [word for word in span if depths[word] == min(depths.values())]
    precedence = _FUSED_HEAD_PRECEDENCE.get(language, _FUSED_HEAD_PRECEDENCE["default"])
    return min(highest, key=lambda w: precedence.index(tags[w]) if tags[w] in precedence else len(precedence))


def _ud_sentence(rows: list[tuple[str, list[str]]], labels: Sequence[str], language: str) -> tuple[list[str], list[str]]:
    """Words and UPOS of one CoNLL-U sentence the way XTREME's conversion makes them: a multi-word
    token keeps its fused surface form and takes the UPOS of its head word (see _fused_head); empty
    nodes are dropped; spaces and zero-width non-joiners inside a word are removed."""
    words: dict[int, tuple[str, str]] = {}
    heads: dict[int, int] = {}
    spans: dict[int, tuple[int, str]] = {}
    for where, fields in rows:
        if "." in fields[0]:
            continue
        if "-" in fields[0]:
            first, last = (int(part) for part in fields[0].split("-"))
            spans[first] = (last, fields[1])
            continue
        word = int(fields[0])
        form = "".join(fields[1].replace("\u200c", "").split(" "))
        words[word] = (form, _check_label(fields[3], labels, where))
        heads[word] = int(fields[6]) if fields[6].isdigit() else 0
    tokens, tags, word = [], [], 1
    while word in words:
        if word in spans:
            last, form = spans[word]
            span = [w for w in range(word, last + 1) if w in words]
            head = _fused_head(span, heads, {w: words[w][1] for w in span}, language)
            tokens.append("".join(form.replace("\u200c", "").split(" ")))
            tags.append(words[head][1])
            word = last + 1
        else:
            tokens.append(words[word][0])
            tags.append(words[word][1])
            word += 1
    return tokens, tags


_CONLLU_ID = re.compile(r"[0-9]+(-[0-9]+|\.[0-9]+)?")


def read_conllu(path: Path, labels: Sequence[str]) -> list[Example]:
    """CoNLL-U (UD treebanks), one example per sentence, multi-word tokens fused as in XTREME."""
    examples: list[Example] = []
    rows: list[tuple[str, list[str]]] = []
    start = 1
    for number, line in [*numbered_lines(path), (-1, "")]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if rows:
                tokens, tags = _ud_sentence(rows, labels, path.name.split("_")[0])
                blanked = tokens.count("_")  # XTREME drops sentences whose words are withheld ("_")
                if blanked == 0 or blanked < len(tokens) - 1:
                    examples.append({"id": f"{path.stem}-{start}", "tokens": tokens, "tags": tags})
            rows, start = [], number + 1
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise StiltsError(f"{path}:{number}: CoNLL-U needs 10 tab-separated columns, found {len(fields)}")
        if not _CONLLU_ID.fullmatch(fields[0]):
            raise StiltsError(
                f"{path}:{number}: CoNLL-U ID {fields[0]!r} is not a word index (1), a range (1-2) "
                "or an empty node (1.1)"
            )
        rows.append((f"{path}:{number}", fields))
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


def _require(row: dict, keys: Sequence[str], where: str) -> None:
    missing = [key for key in keys if key not in row]
    if missing:
        raise StiltsError(f"{where}: missing key(s) {missing}")


ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction"}


def read_nli_jsonl(path: Path, labels: Sequence[str]) -> list[Example]:
    """ANLI release (`context`, `hypothesis`, label e/n/c) or SNLI (`sentence1`, `sentence2`,
    `gold_label`) jsonl; SNLI pairs without annotator consensus (gold_label "-") are skipped, as
    everyone does."""
    examples = []
    for number, row in jsonl_rows(path):
        where = f"{path}:{number}"
        if "gold_label" in row:
            _require(row, ("sentence1", "sentence2"), where)
            if row["gold_label"] == "-":
                continue
            text_a, text_b, label = row["sentence1"], row["sentence2"], row["gold_label"]
        else:
            _require(row, ("context", "hypothesis", "label"), where)
            text_a, text_b, label = row["context"], row["hypothesis"], ANLI_LABELS.get(row["label"], row["label"])
        examples.append({"id": str(row.get("uid", row.get("pairID", f"{path.stem}-{number}"))),
                         "text_a": text_a, "text_b": text_b, "label": _check_label(label, labels, where)})
    return examples


def _choice_label(label: object, count: int, where: str) -> int | None:
    if label in (None, ""):
        return None
    if not str(label).strip().isdigit() or not 0 <= int(label) < count:
        raise StiltsError(f"{where}: label {label!r} is not a choice index in 0..{count - 1}")
    return int(label)


def read_hellaswag_jsonl(path: Path) -> list[Example]:
    """HellaSwag release jsonl: context `ctx`, four `endings`, integer `label`."""
    examples = []
    for number, row in jsonl_rows(path):
        endings = row.get("endings")
        if not isinstance(endings, list) or len(endings) < 2 or "ctx" not in row:
            raise StiltsError(f"{path}:{number}: a HellaSwag row needs 'ctx' and a list of 'endings'")
        examples.append({"id": str(row.get("ind", number)), "context": row["ctx"], "choices": endings,
                         "label": _choice_label(row.get("label"), len(endings), f"{path}:{number}")})
    return examples


def read_cosmosqa_csv(path: Path) -> list[Example]:
    """CosmosQA release csv: id, context, question, answer0..answer3, label."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise StiltsError(f"{path}: not a readable CSV file ({error})") from None
    examples = []
    for number, row in enumerate(rows, start=2):
        where = f"{path}:{number}"
        _require(row, ("id", "context", "question", "answer0", "answer1", "answer2", "answer3"), where)
        choices = [row[f"answer{i}"] for i in range(4)]
        examples.append({"id": row["id"], "context": f"{row['context']} {row['question']}", "choices": choices,
                         "label": _choice_label(row.get("label"), 4, where)})
    return examples


def read_commonsenseqa_jsonl(path: Path) -> list[Example]:
    """CommonsenseQA release jsonl: question.stem, question.choices[{label, text}], answerKey A-E."""
    examples = []
    for number, row in jsonl_rows(path):
        where = f"{path}:{number}"
        _require(row, ("id", "question"), where)
        question = row["question"]
        if not isinstance(question, dict) or "stem" not in question or not question.get("choices"):
            raise StiltsError(f"{where}: 'question' needs a 'stem' and 'choices'")
        if not all(isinstance(choice, dict) and {"label", "text"} <= choice.keys() for choice in question["choices"]):
            raise StiltsError(f"{where}: each of 'question.choices' needs a 'label' and a 'text'")
        keys = [choice["label"] for choice in question["choices"]]
        answer = row.get("answerKey")
        if answer not in (None, "") and answer not in keys:
            raise StiltsError(f"{where}: answerKey {answer!r} is not one of the choice labels {keys}")
        examples.append({"id": row["id"], "context": question["stem"],
                         "choices": [choice["text"] for choice in question["choices"]],
                         "label": keys.index(answer) if answer else None})
    return examples


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
        _require(row, ("context", "question", "answerA", "answerB", "answerC"), where)
        examples.append({"id": f"{path.stem}-{number}", "context": f"{row['context']} {row['question']}",
                         "choices": [row["answerA"], row["answerB"], row["answerC"]],
                         "label": _choice_label(label, 3, where)})
    return examples


def copa_context(premise: str, question: str) -> str:
    """XTREME-R's run_xcopa.py input: the premise, then the question in English for every language."""
    return f"{premise} What was the {question}?"


def read_copa_jsonl(path: Path) -> list[Example]:
    """(X)COPA jsonl: premise, choice1, choice2, question cause|effect, label 0/1. The context is
    "<premise> What was the <question>?" in English for every language, as XTREME-R's run_xcopa.py."""
    examples = []
    for number, row in jsonl_rows(path):
        where = f"{path}:{number}"
        _require(row, ("premise", "choice1", "choice2", "question"), where)
        if row["question"] not in ("cause", "effect"):
            raise StiltsError(f"{where}: question {row['question']!r} is neither 'cause' nor 'effect'")
        examples.append({"id": str(row.get("idx", number)),
                         "context": copa_context(row["premise"], row["question"]),
                         "choices": [row["choice1"], row["choice2"]], "label": _choice_label(row.get("label"), 2, where)})
    return examples
