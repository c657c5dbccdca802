"""SQuAD-style extractive QA scores with the exact semantics of the official scripts.

`squad_v1` follows `evaluate-v1.1.py` (vendored by XTREME as third_party/evaluate_squad.py and used for
XQuAD, MLQA-en and TyDiQA-GoldP); `squad_v2` follows `evaluate-v2.0.py` without a no-answer probability
file. Their quirks are kept on purpose, so that our numbers match published ones.
"""

import re
import string
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop ASCII punctuation, drop English articles, collapse whitespace (official order)."""
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    """1.0 when both strings normalise to the same text, else 0.0 (v1.1 and v2.0 agree on this)."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    """Bag-of-tokens F1 as in v1.1: no shared token gives 0, even when both sides are empty."""
    return _token_f1(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def _token_f1(prediction_tokens: list[str], ground_truth_tokens: list[str]) -> float:
    num_same = sum((Counter(prediction_tokens) & Counter(ground_truth_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def _f1_v2(prediction: str, ground_truth: str) -> float:
    """v2.0's compute_f1: when either side has no tokens, F1 is 1 if both are empty, else 0."""
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    if not prediction_tokens or not ground_truth_tokens:
        return float(prediction_tokens == ground_truth_tokens)
    return _token_f1(prediction_tokens, ground_truth_tokens)


def _check_gold(gold: Mapping[str, Sequence[str]]) -> None:
    if not gold:
        raise ValueError("no gold questions to score against")
    for qid, answers in gold.items():
        if isinstance(answers, str):  # would silently be scored character by character
            raise ValueError(f"gold answers of question {qid!r} must be a list of texts, got the string {answers!r}")


def _warn_missing(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> None:
    """The official scripts report unanswered questions; we warn once instead of printing per id."""
    missing = [qid for qid in gold if qid not in predictions]
    if missing:
        warnings.warn(
            f"{len(missing)} of {len(gold)} questions have no prediction and score 0 "
            f"(first: {', '.join(missing[:3])})",
            stacklevel=3,
        )


def max_over_gold(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                  exact: Callable[[str, str], float], f1: Callable[[str, str], float], rule: str) -> dict[str, float]:
    """EM and F1 (0-100) as the SQuAD v1.1 and MLQA scripts average them: max over a question's gold
    answers, mean over all gold questions. Gold defines the question set: extra predictions are
    ignored, a missing one scores 0 (with a warning giving the count)."""
    _check_gold(gold)
    for qid, answers in gold.items():
        if not answers:
            raise ValueError(f"question {qid!r} has no gold answer; {rule} scoring needs one")
    _warn_missing(gold, predictions)
    exact_total = f1_total = 0.0
    for qid, answers in gold.items():
        if qid in predictions:
            exact_total += max(exact(predictions[qid], answer) for answer in answers)
            f1_total += max(f1(predictions[qid], answer) for answer in answers)
    return {"exact_match": 100.0 * exact_total / len(gold), "f1": 100.0 * f1_total / len(gold)}


def squad_v1(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> dict[str, float]:
    """EM and F1 (0-100) of `evaluate-v1.1.py` (XQuAD, TyDiQA-GoldP in XTREME)."""
    return max_over_gold(gold, predictions, exact_match_score, f1_score, "v1.1 (use squad_v2 for unanswerable)")


class Answer(str):
    """A decoded answer text carrying its question's no-answer odds: the null span's score minus the
    best span's (what SQuAD v2's `--na-prob-file` holds; the answer is "" when the odds are > 0)."""

    null_odds: float

    def __new__(cls, text: str, null_odds: float) -> "Answer":
        answer = super().__new__(cls, text)
        answer.null_odds = float(null_odds)
        return answer

    def __getnewargs__(self) -> tuple[str, float]:  # copies and pickles keep the odds
        return str(self), self.null_odds


def _best_threshold(predictions: Mapping[str, str], scores: Mapping[str, float], na_probs: Mapping[str, float],
                    has_answer: Mapping[str, bool]) -> tuple[float, float]:
    """`evaluate-v2.0.py`'s find_best_thresh: start from "no answer everywhere", switch questions to
    their prediction in increasing no-answer odds and keep the best total; (score 0-100, threshold)."""
    current = best = float(sum(not answerable for answerable in has_answer.values()))
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda key: na_probs[key]):
        if qid not in scores:
            continue
        current += scores[qid] if has_answer[qid] else (-1.0 if predictions[qid] else 0.0)
        if current > best:
            best, threshold = current, na_probs[qid]
    return 100.0 * best / len(scores), threshold


def squad_v2(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
             na_probs: Mapping[str, float] | None = None) -> dict[str, float]:
    """Scores of `evaluate-v2.0.py`; an empty answer list marks an unanswerable question.

    As in the official script, gold answers that normalise to "" are dropped and an empty gold list
    becomes [""], so only an empty prediction is right. The official script crashes on a missing
    prediction; here it scores 0 and counts in every total, like `squad_v1`. With `na_probs` (its
    `--na-prob-file`: each question's no-answer odds) it also reports `best_exact` / `best_f1` and
    their thresholds: the scores at the best no-answer threshold. The main scores are those of the
    predictions as given (the official default threshold of 1.0 on probabilities changes nothing
    for predictions already made with threshold 0 on score differences).
    """
    _check_gold(gold)
    _warn_missing(gold, predictions)
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    for qid, answers in gold.items():
        references = [answer for answer in answers if normalize_answer(answer)] or [""]
        prediction = predictions.get(qid)
        exact[qid] = 0.0 if prediction is None else max(exact_match_score(prediction, a) for a in references)
        f1[qid] = 0.0 if prediction is None else max(_f1_v2(prediction, a) for a in references)
    result = _v2_summary(exact, f1, list(gold), "")
    has_answer = [qid for qid, answers in gold.items() if answers]
    no_answer = [qid for qid, answers in gold.items() if not answers]
    if has_answer:
        result.update(_v2_summary(exact, f1, has_answer, "HasAns_"))
    if no_answer:
        result.update(_v2_summary(exact, f1, no_answer, "NoAns_"))
    if na_probs is not None:
        absent = [qid for qid in gold if qid not in na_probs]
        if absent:
            raise ValueError(f"{len(absent)} questions have no no-answer odds (first: {', '.join(absent[:3])})")
        answerable = {qid: bool(answers) for qid, answers in gold.items()}
        given = {qid: predictions.get(qid, "") for qid in gold}
        for name, scores in (("exact", exact), ("f1", f1)):
            result[f"best_{name}"], result[f"best_{name}_thresh"] = _best_threshold(given, scores, na_probs, answerable)
    return result


def _v2_summary(
    exact: dict[str, float], f1: dict[str, float], qids: list[str], prefix: str
) -> dict[str, float]:
    total = len(qids)
    return {
        f"{prefix}exact": 100.0 * sum(exact[qid] for qid in qids) / total,
        f"{prefix}f1": 100.0 * sum(f1[qid] for qid in qids) / total,
        f"{prefix}total": total,
    }
