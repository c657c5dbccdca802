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
from pathlib import Path

from stilts.errors import StiltsError
from stilts.eval.xtreme import BENCHMARKS, collect_task_scores, xtreme_score
from stilts.heads import head_of
from stilts.tasks import get_task, task_names
from stilts.tasks.spec import TaskSpec


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
        head = head_of(spec)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            language = _language(spec, args.gold, args.lang)
            if args.na_prob_file is not None:
                if not spec.allow_no_answer:
                    raise StiltsError(f"--na-prob-file is for tasks with unanswerable questions (squad), not "
                                      f"{spec.name}")
            metrics: dict[str, object] = dict(head.score_file(spec, args.gold, args.pred, language,
                                                              na_prob_file=args.na_prob_file))
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

