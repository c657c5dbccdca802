"""Score a prediction file against gold: `python -m stilts.score TASK GOLD PRED [--lang L]`.

Lets anyone check numbers from another system (SQuAD's `{id: answer}` JSON, XTREME's prediction files)
with the same official-parity metrics stilts reports, without a model. Prints one JSON object of
metrics (0-100) on stdout; any bad input is one `error: ...` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from stilts.errors import StiltsError
from stilts.eval.qa import Answer
from stilts.eval.xtreme import BENCHMARKS, collect_task_scores, xtreme_score
from stilts.tasks import get_task, task_names
from stilts.tasks.common.readers import load_json, qa_has_gold
from stilts.tasks.common.sources import read_file
from stilts.tasks.spec import Example, TaskSpec

Metrics = dict[str, float]


def _read_lines(path: Path) -> list[str]:
    """PRED's lines; trailing blank lines are dropped so a final newline (or two) is not a prediction."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except UnicodeDecodeError as error:
        raise StiltsError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _read_gold(spec: TaskSpec, gold: Path, field: str) -> list[Example]:
    """Gold examples; XTREME's label-stripped test files read fine but cannot be scored, so say so."""
    examples = read_file(spec, gold)
    if not examples:
        raise StiltsError(f"{gold}: no examples to score")
    if any(example[field] is None for example in examples):
        raise StiltsError(f"{gold}: has no gold {field} (a label-stripped test file?); score against a labelled file")
    return examples


def _check_count(gold: Path, n_gold: int, pred: Path, n_pred: int) -> None:
    """Line-aligned predictions only mean something when there is exactly one per gold example."""
    if n_pred != n_gold:
        raise StiltsError(f"{pred} has {n_pred} predictions but {gold} has {n_gold} examples; expected one per line")


def _with_null_odds(answers: list[str | None], ids: list[str], na_prob_file: Path) -> list[Answer | str | None]:
    """SQuAD v2's `--na-prob-file` ({question_id: no-answer odds}) attached to the answers."""
    odds = load_json(na_prob_file)
    if not isinstance(odds, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in odds.values()):
        raise StiltsError(f"{na_prob_file}: expected a JSON object {{question_id: no-answer odds}} with numbers")
    absent = [qid for qid in ids if qid not in odds]
    if absent:
        raise StiltsError(f"{na_prob_file}: {len(absent)} questions have no odds (first: {', '.join(absent[:3])})")
    return [Answer(answer or "", odds[qid]) for qid, answer in zip(ids, answers)]


def score_span_qa(spec: TaskSpec, gold: Path, pred: Path, language: str, na_prob_file: Path | None = None) -> Metrics:
    """PRED is the official `{question_id: answer_text}` JSON; gold decides which questions count.
    With `na_prob_file` (SQuAD v2) the best-threshold scores are added, as the official script does."""
    examples = read_file(spec, gold)
    if not qa_has_gold(examples):
        raise StiltsError(f"{gold}: has no gold answers (XTREME strips them from test files)")
    if len({example["id"] for example in examples}) != len(examples):
        raise StiltsError(f"{gold}: question ids repeat, so predictions could not be told apart")
    predictions = load_json(pred)
    if not isinstance(predictions, dict) or not all(isinstance(text, str) for text in predictions.values()):
        raise StiltsError(f"{pred}: expected a JSON object {{question_id: answer_text}} with string answers")
    ids = {example["id"] for example in examples}
    extra = [qid for qid in predictions if qid not in ids]
    if extra:
        warnings.warn(f"{len(extra)} predictions have ids not in {gold}; ignored (first: {', '.join(extra[:3])})")
    # A question without a prediction scores 0 (in the totals); the eval layer warns with the count.
    answers = [predictions.get(example["id"]) for example in examples]
    if na_prob_file is not None:
        answers = _with_null_odds(answers, [example["id"] for example in examples], na_prob_file)
    return spec.scorer(examples, answers, language)


def score_classification(spec: TaskSpec, gold: Path, pred: Path, language: str) -> Metrics:
    """PRED is XTREME's prediction file: one label string per line, in gold order."""
    examples = _read_gold(spec, gold, "label")
    labels = [line.strip() for line in _read_lines(pred)]
    for number, label in enumerate(labels, start=1):
        if label not in spec.labels:
            raise StiltsError(f"{pred}:{number}: label {label!r} is not in the label set {list(spec.labels)}")
    _check_count(gold, len(examples), pred, len(labels))
    return spec.scorer(examples, labels, language)


def score_multiple_choice(spec: TaskSpec, gold: Path, pred: Path, language: str) -> Metrics:
    """PRED holds one integer choice index per line, in gold order."""
    examples = _read_gold(spec, gold, "label")
    lines = _read_lines(pred)
    _check_count(gold, len(examples), pred, len(lines))
    choices = []
    for number, (example, line) in enumerate(zip(examples, lines), start=1):
        try:
            choice = int(line)
        except ValueError:
            raise StiltsError(f"{pred}:{number}: expected an integer choice index, found {line!r}") from None
        if not 0 <= choice < len(example["choices"]):
            raise StiltsError(f"{pred}:{number}: choice {choice} is outside 0..{len(example['choices']) - 1}")
        choices.append(choice)
    return spec.scorer(examples, choices, language)


def _read_tag_sentences(spec: TaskSpec, pred: Path) -> list[tuple[int, list[str]]]:
    """Sentences of predicted tags with the PRED line each starts on; `token<TAB>tag` lines give their tag."""
    sentences: list[tuple[int, list[str]]] = []
    in_sentence = False
    for number, line in enumerate(_read_lines(pred), start=1):
        if not line.strip():
            in_sentence = False
            continue
        tag = line.split("\t")[-1].strip()
        if spec.labels and tag not in spec.labels:
            raise StiltsError(f"{pred}:{number}: tag {tag!r} is not in the tag set {list(spec.labels)}")
        if in_sentence:
            sentences[-1][1].append(tag)
        else:
            sentences.append((number, [tag]))
            in_sentence = True
    return sentences


def score_tagging(spec: TaskSpec, gold: Path, pred: Path, language: str) -> Metrics:
    """PRED is XTREME's prediction file: one tag per line, a blank line between sentences."""
    examples = _read_gold(spec, gold, "tags")
    sentences = _read_tag_sentences(spec, pred)
    for index, (example, (line, tags)) in enumerate(zip(examples, sentences), start=1):
        if len(tags) != len(example["tokens"]):
            raise StiltsError(
                f"{pred}:{line}: sentence {index} has {len(tags)} tags but {len(example['tokens'])} tokens in {gold}"
            )
    if len(sentences) > len(examples):
        line = sentences[len(examples)][0]
        raise StiltsError(f"{pred}:{line}: sentence {len(examples) + 1} is beyond the {len(examples)} in {gold}")
    if len(sentences) < len(examples):
        raise StiltsError(
            f"{pred}: ends after sentence {len(sentences)} but {gold} has {len(examples)}; "
            f"sentence {len(sentences) + 1} is missing"
        )
    return spec.scorer(examples, [tags for _, tags in sentences], language)


def score_retrieval(spec: TaskSpec, gold: Path, pred: Path, language: str) -> Metrics:
    """Retrieval gold and predictions share a format: Tatoeba indices, BUCC id pairs, or
    `{query: [candidate ids]}` JSON for LAReQA / Mewsli-X (relevant vs ranked)."""
    return spec.scorer(read_file(spec, gold), read_file(spec, pred), language)


_SCORERS: dict[str, Callable[[TaskSpec, Path, Path, str], Metrics]] = {
    "retrieval": score_retrieval,
    "span_qa": score_span_qa,
    "classification": score_classification,
    "multiple_choice": score_multiple_choice,
    "tagging": score_tagging,
}


def _language(spec: TaskSpec, gold: Path, given: str | None) -> str:
    """The gold file's language: --lang, else read off MLQA/XTREME file names, else the task's own."""
    if given:
        return given
    found = re.search(r"context-([a-z]{2})-question|[.\-_]([a-z]{2})\.(?:json|tsv|jsonl)$", gold.name)
    if found:
        return found.group(1) or found.group(2)
    if spec.scorer_needs_language:
        raise StiltsError(f"{gold}: cannot tell its language from the name; give --lang (e.g. --lang de)")
    return spec.train_language


def score_xtreme(argv: list[str]) -> int:
    """`python -m stilts.score xtreme RESULTS... [--benchmark xtreme|xtreme-r]`: the benchmark score
    of several runs' results.json files (one model, one intermediate chain)."""
    parser = argparse.ArgumentParser(prog="python -m stilts.score xtreme",
                                     description="XTREME / XTREME-R scores from results.json files.")
    parser.add_argument("results", type=Path, nargs="+", help="results.json files (or run folders)")
    parser.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="xtreme")
    args = parser.parse_args(argv)
    try:
        documents = []
        for path in args.results:
            path = path / "results.json" if path.is_dir() else path
            try:
                documents.append(json.loads(path.read_text(encoding="utf-8")))
            except json.JSONDecodeError as error:
                raise StiltsError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
        summary = xtreme_score(collect_task_scores(documents), args.benchmark)
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 2
    except (StiltsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry; returns the exit code (2 on bad input) so tests can call it in-process."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["xtreme"]:
        return score_xtreme(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m stilts.score",
        description="Score a prediction file against gold with the official metrics; prints one JSON object.",
    )
    parser.add_argument("task", help=f"task config name ({', '.join(task_names())}), or `xtreme RESULTS...`")
    parser.add_argument("gold", type=Path, help="the task's gold file (as its reader reads it)")
    parser.add_argument("pred", type=Path, help="predictions: QA {id: answer} JSON, else one per line")
    parser.add_argument("--lang", help="language of the gold file (MLQA's normalisation depends on it); "
                                       "read off the file name when not given")
    parser.add_argument("--na-prob-file", type=Path,
                        help="SQuAD v2: {question_id: no-answer odds} JSON; adds best_exact / best_f1 and thresholds")
    args = parser.parse_args(argv)
    try:
        spec = get_task(args.task)
        if spec.head not in _SCORERS:
            raise StiltsError(f"{spec.name} has no prediction-file scorer ({spec.head} predictions are scored while "
                              f"training; their counts are in the stage's predictions/ folder)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            language = _language(spec, args.gold, args.lang)
            if args.na_prob_file is not None:
                if not spec.allow_no_answer:
                    raise StiltsError(f"--na-prob-file is for tasks with unanswerable questions (squad), not "
                                      f"{spec.name}")
                metrics: dict[str, object] = dict(score_span_qa(spec, args.gold, args.pred, language,
                                                                args.na_prob_file))
            else:
                metrics = dict(_SCORERS[spec.head](spec, args.gold, args.pred, language))
    except OSError as error:
        print(f"error: {error.filename or args.pred}: {error.strerror or error}", file=sys.stderr)
        return 2
    except (StiltsError, ValueError) as error:
        # StiltsError names its file already; the eval layer's ValueError only knows the two sides it got.
        where = "" if isinstance(error, StiltsError) else f"{args.pred} against {args.gold}: "
        print(f"error: {where}{error}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"warning: {args.pred}: {warning.message}", file=sys.stderr)
    if args.lang or spec.scorer_needs_language:
        metrics["lang"] = language
    print(json.dumps(metrics))
    return 0

