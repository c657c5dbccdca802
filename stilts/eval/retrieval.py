"""Retrieval scores of XTREME (BUCC 2018, Tatoeba) and XTREME-R (LAReQA, Mewsli-X) with the semantics of
the official code, on the exact search of `stilts.eval.search`.

What each score reproduces (google-research/xtreme unless named otherwise):

- BUCC: third_party/utils_retrieve.py `mine_bitext` as XTREME calls it (mode "mine", retrieval "max",
  ratio margin, neighbourhood 4, cosine; facebookresearch/LASER source/mine_bitexts.py computes the
  same), the threshold search `bucc_optimize` and extraction `bucc_extract` (LASER tasks/bucc/bucc.py
  `BuccOptimize`/`BuccExtract`), and F1 as evaluate.py `bucc_f1` computes it.
- Tatoeba: `similarity_search` as third_party/run_retrieval.py (and evaluate_retrieval.py) calls it,
  scored by evaluate.py `accuracy`.
- LAReQA: third_party/utils_lareqa.py `average_precision_at_k`, which evaluate_retrieval.py calls with k=20.
- Mewsli-X: third_party/utils_mewslix.py `evaluate`, the mean reciprocal rank of the top TOP_K=20.

Where scores tie exactly, the order (and so the result) may differ from the official code, which
leaves it to quicksort or faiss's heaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from stilts.eval.search import as_matrix, knn, knn_both_ways, positive_int, to_numpy

if TYPE_CHECKING:
    from stilts.eval.search import Array


def _unit_rows(array: Array, name: str) -> np.ndarray:
    """Rows scaled to length 1, as faiss.normalize_L2 does before XTREME's cosine searches (zero rows stay 0)."""
    matrix = to_numpy(as_matrix(array, name))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1)


def bucc_candidates(
    source_embeddings: Array, target_embeddings: Array, k: int = 4, backend: str = "auto"
) -> list[tuple[int, int, float]]:
    """Mined (source index, target index, ratio-margin score) pairs, best first, as XTREME's `mine_bitext`.

    Both sides are L2-normalised. With m_x(i) the mean cosine of source i to its k nearest targets and
    m_y(j) that of target j to its k nearest sources, score(i, j) = cos(i, j) / ((m_x(i) + m_y(j)) / 2).
    Each source's candidate is the best-scoring of its k cosine-nearest targets (not of all targets),
    and each target's likewise among its k nearest sources. Retrieval "max" pools these 2 x n proposals,
    walks them by decreasing score and keeps a pair only if neither its source nor its target was used
    by a kept pair (so a pair found from both sides appears once, and the mining is one-to-one); a kept
    pair is output when its score is above mine_bitext's default threshold 0. k is capped at the size of
    the other side, as there.

    XTREME first drops repeated sentences (`text_load_unify`): pass one embedding per distinct sentence
    text. To compare with BUCC ids, map indices to ids as `read_sent2id` does, leaving out sentences
    whose stripped text occurs more than once in a file.
    """
    k = positive_int(k, "k")
    x = _unit_rows(source_embeddings, "source_embeddings")
    y = _unit_rows(target_embeddings, "target_embeddings")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"source dimension {x.shape[1]} differs from target dimension {y.shape[1]}")
    if len(x) == 0 or len(y) == 0:
        return []
    (x2y_sim, x2y_ind), (y2x_sim, y2x_ind) = knn_both_ways(x, y, min(k, len(y)), min(k, len(x)), backend=backend)
    x2y_mean, y2x_mean = x2y_sim.mean(axis=1), y2x_sim.mean(axis=1)
    forward = _ratio_margins(x, y, x2y_ind, x2y_mean, y2x_mean)
    backward = _ratio_margins(y, x, y2x_ind, y2x_mean, x2y_mean)
    forward_best = x2y_ind[np.arange(len(x)), forward.argmax(axis=1)]
    backward_best = y2x_ind[np.arange(len(y)), backward.argmax(axis=1)]
    sources = np.concatenate([np.arange(len(x)), backward_best]).tolist()
    targets = np.concatenate([forward_best, np.arange(len(y))]).tolist()
    scores = np.concatenate([forward.max(axis=1), backward.max(axis=1)]).astype(np.float64)
    used_sources: set[int] = set()
    used_targets: set[int] = set()
    mined = []
    for proposal in np.argsort(-scores, kind="stable").tolist():
        source, target = sources[proposal], targets[proposal]
        if source in used_sources or target in used_targets:
            continue
        used_sources.add(source)
        used_targets.add(target)
        if scores[proposal] > 0:
            mined.append((source, target, float(scores[proposal])))
    return mined


def _ratio_margins(
    a: np.ndarray, b: np.ndarray, neighbours: np.ndarray, a_mean: np.ndarray, b_mean: np.ndarray, chunk: int = 1024
) -> np.ndarray:
    """score_candidates: the margin of a[i] against each of its neighbours b[neighbours[i, j]]. The cosine
    is recomputed from the vectors, so a pair scores identically from both sides."""
    margins = np.empty(neighbours.shape, dtype=np.float32)
    for start in range(0, len(a), chunk):
        rows = slice(start, start + chunk)
        cosines = (a[rows, None, :] * b[neighbours[rows]]).sum(axis=-1)
        margins[rows] = cosines / ((a_mean[rows, None] + b_mean[neighbours[rows]]) / 2)
    return margins


def _best_score_per_pair(candidates_with_ids: Iterable[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    """read_candidate2score: a pair listed twice keeps its highest score (and its first position)."""
    best: dict[tuple[str, str], float] = {}
    for source_id, target_id, score in candidates_with_ids:
        pair = (source_id, target_id)
        best[pair] = max(float(score), best.get(pair, float(score)))
    return best


def bucc_threshold(candidates_with_ids: Iterable[tuple[str, str, float]], gold: set[tuple[str, str]]) -> float:
    """The margin threshold that maximises F1 against `gold` (BUCC dev), as `bucc_optimize` finds it.

    Candidates are walked by decreasing score; whenever the F1 of the prefix so far beats the best so
    far (strictly), the threshold becomes the midpoint between the current score and the next one.
    With no correct candidate it stays 0. Recall counts every gold pair, mined or not.

    Differences from the official code, which we take to be bugs: bucc_optimize reads the score after
    the last candidate and raises IndexError when F1 peaks there; we return the last score then, which
    `bucc_extract`'s `>=` keeps. XTREME's run_retrieval.py passes an undefined `threshold` to bucc_eval,
    reads target ids from `{prefix}.id` instead of `{prefix}.{TL}.id`, and writes the pairs of the split
    that has gold (dev) as its test predictions. The intended protocol, LASER's BUCC recipe, is: tune
    the threshold on dev here, mine test the same way, and take the test pairs scoring at least the dev
    threshold (`bucc_extract`), scored by `bucc_scores`.
    """
    if not gold:
        raise ValueError("no gold pairs: a threshold cannot be tuned against an empty gold set")
    items = sorted(_best_score_per_pair(candidates_with_ids).items(), key=lambda item: -item[1])
    extracted = correct = 0
    threshold = best_f1 = 0.0
    for position, (pair, score) in enumerate(items):
        extracted += 1
        correct += pair in gold
        if correct:
            precision, recall = correct / extracted, correct / len(gold)
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best_f1:
                best_f1 = f1
                threshold = (score + items[position + 1][1]) / 2 if position + 1 < len(items) else score
    return threshold


def bucc_extract(
    candidates_with_ids: Iterable[tuple[str, str, float]], threshold: float
) -> set[tuple[str, str]]:
    """The (source id, target id) pairs whose margin score is at least `threshold` (bucc_extract's `>=`)."""
    return {pair for pair, score in _best_score_per_pair(candidates_with_ids).items() if score >= threshold}


def bucc_scores(predicted: set[tuple[str, str]], gold: set[tuple[str, str]]) -> dict[str, float]:
    """f1, precision and recall (0-100) over exact id pairs, as evaluate.py `bucc_f1`: all 0 when none is right."""
    correct = len(set(predicted) & set(gold))
    if correct == 0:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    precision, recall = correct / len(set(predicted)), correct / len(set(gold))
    return {
        "f1": 100.0 * 2 * precision * recall / (precision + recall),
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
    }


def tatoeba_accuracy(source_embeddings: Array, target_embeddings: Array, backend: str = "auto") -> float:
    """Percentage (0-100) of English sentences whose nearest non-English sentence is their translation.

    Pass the line-aligned files as XTREME names them: source = `tatoeba.xx-eng.xx`, target =
    `tatoeba.xx-eng.eng`. XTREME's `similarity_search(x, y)` indexes the source (xx) side and queries it
    with the target (English) side, so the English sentences are the queries: target j is right when
    its nearest source is source j. The direction matters (nearest-neighbour search is not symmetric).
    XTREME normalises both sides and searches by L2 distance, which ranks like cosine; so do we.
    """
    x = _unit_rows(source_embeddings, "source_embeddings")
    y = _unit_rows(target_embeddings, "target_embeddings")
    if len(x) != len(y):
        raise ValueError(f"Tatoeba sides must be line-aligned, got {len(x)} source and {len(y)} target sentences")
    if len(y) == 0:
        raise ValueError("cannot score 0 Tatoeba sentence pairs")
    _, nearest = knn(y, x, 1, backend=backend)
    return 100.0 * float(np.mean(nearest[:, 0] == np.arange(len(y))))


def mean_average_precision_at_k(scores_or_rankings: Array, relevant: Sequence[set[int]], k: int = 20) -> float:
    """mAP@k (0-100), XTREME-R's LAReQA metric (`average_precision_at_k` with k=20), mean over queries.

    A query's AP@k sums, at each rank r <= k holding a relevant candidate not seen before, the number
    of relevant hits so far divided by r, and divides by min(number relevant, k). `scores_or_rankings`
    is either an integer [n_queries, >= k] array of candidate indices best first (e.g. from `knn`) or
    a float [n_queries, n_candidates] score matrix, ranked here by decreasing score. With one relevant
    candidate per query, as in Mewsli-X, AP@k is the reciprocal rank, so this equals
    `mean_reciprocal_rank_at_k` (XTREME-R reports Mewsli-X as "MRR/MAP@20").
    """
    rankings = _rankings(scores_or_rankings, relevant, k)
    total = 0.0
    for ranked, targets in zip(rankings, relevant):
        hits, precision_sum, seen = 0, 0.0, set()
        for rank, candidate in enumerate(ranked, start=1):
            if candidate in targets and candidate not in seen:
                hits += 1
                precision_sum += hits / rank
            seen.add(candidate)
        total += precision_sum / min(len(targets), k)
    return 100.0 * total / len(rankings)


def mean_reciprocal_rank_at_k(scores_or_rankings: Array, relevant: Sequence[set[int]], k: int = 20) -> float:
    """MRR@k (0-100), Mewsli-X's metric in XTREME-R (utils_mewslix `evaluate`, TOP_K=20): the mean of
    1 / rank of the first relevant candidate within the top k, 0 when there is none. Inputs as for
    `mean_average_precision_at_k`."""
    rankings = _rankings(scores_or_rankings, relevant, k)
    total = 0.0
    for ranked, targets in zip(rankings, relevant):
        total += next((1.0 / rank for rank, candidate in enumerate(ranked, start=1) if candidate in targets), 0.0)
    return 100.0 * total / len(rankings)


def _rankings(scores_or_rankings: Array, relevant: Sequence[set[int]], k: int) -> list[list[int]]:
    """The top-k candidate indices per query, after checking the inputs agree."""
    k = positive_int(k, "k")
    array = to_numpy(scores_or_rankings)
    if array.ndim != 2:
        raise ValueError(f"scores_or_rankings must be a 2-D [n_queries, n] array, got shape {array.shape}")
    if len(array) != len(relevant):
        raise ValueError(f"{len(array)} ranked queries but {len(relevant)} relevant sets")
    if len(array) == 0:
        raise ValueError("cannot score 0 queries")
    for query, targets in enumerate(relevant):
        if not targets:
            raise ValueError(f"query {query} has no relevant candidate, so its precision is undefined")
    if np.issubdtype(array.dtype, np.integer):
        if array.shape[1] < k:
            raise ValueError(f"rankings have {array.shape[1]} columns, fewer than k={k}")
        return array[:, :k].tolist()
    if np.issubdtype(array.dtype, np.floating):
        return _top_k_by_score(array, k).tolist()
    raise TypeError(f"scores_or_rankings must hold integer indices or float scores, not {array.dtype}")


def _top_k_by_score(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k highest scores, best first, lower index first among equals."""
    k = min(k, scores.shape[1])
    if k < scores.shape[1]:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    order = np.lexsort((candidates, -np.take_along_axis(scores, candidates, axis=1)), axis=1)
    return np.take_along_axis(candidates, order, axis=1)
