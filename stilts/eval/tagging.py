"""Sequence-tagging scores (PAN-X NER, UD POS) computed the way XTREME's third_party/run_tag.py does."""

import warnings
from collections.abc import Sequence


def tagging_scores(gold: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level f1/precision/recall (seqeval default mode) and token accuracy, all 0-100.

    XTREME scores both NER and POS with `seqeval.metrics.f1_score(gold, preds)`; for UPOS tags, which
    have no B-/I- prefix, seqeval reads the first letter as the chunk tag and the rest as the type (so
    runs of the same tag merge into one "entity"). That is what published POS numbers mean, so we keep
    it, silencing seqeval's "seems not to be NE tag" warning. The value depends on the seqeval version;
    seqeval 1.2.2 defines it.
    """
    from seqeval.metrics import f1_score, precision_score, recall_score  # scikit-learn: only when scoring

    _check_aligned(gold, predictions)
    gold_lists = [list(sentence) for sentence in gold]
    prediction_lists = [list(sentence) for sentence in predictions]
    token_accuracy = _token_accuracy(gold_lists, prediction_lists)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".* seems not to be NE tag\.")
        scores = {
            "f1": f1_score(gold_lists, prediction_lists),
            "precision": precision_score(gold_lists, prediction_lists),
            "recall": recall_score(gold_lists, prediction_lists),
        }
    result = {name: 100.0 * float(value) for name, value in scores.items()}
    result["accuracy"] = token_accuracy
    return result


def token_accuracy(gold: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]) -> dict[str, float]:
    """Token accuracy alone, 0-100: the metric of open tag sets such as CCG supertags, where chunk F1
    has no meaning."""
    _check_aligned(gold, predictions)
    return {"accuracy": _token_accuracy([list(s) for s in gold], [list(s) for s in predictions])}


def _check_aligned(gold: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]) -> None:
    """seqeval's own length error does not say which sentence is wrong; ours names it."""
    if len(gold) != len(predictions):
        raise ValueError(
            f"cannot score {len(predictions)} predicted sentences against {len(gold)} gold sentences"
        )
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predictions)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(
                f"sentence {index} has {len(gold_tags)} gold tags but {len(predicted_tags)} predicted tags"
            )


def _token_accuracy(gold: list[list[str]], predictions: list[list[str]]) -> float:
    total = sum(len(sentence) for sentence in gold)
    if total == 0:
        raise ValueError("cannot compute token accuracy: there are no tokens")
    correct = sum(g == p for sentences in zip(gold, predictions) for g, p in zip(*sentences))
    return 100.0 * correct / total
