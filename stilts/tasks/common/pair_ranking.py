"""Scoring a dual encoder on its own dev pairs: every query retrieves among all the set's distinct
candidates (not just its micro-batch), so the dev score does not depend on the batch size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stilts.eval.retrieval import mean_average_precision_at_k
from stilts.eval.search import knn
from stilts.tasks.spec import Example

K = 20  # XTREME-R's cut-off for LAReQA and Mewsli-X


@dataclass(frozen=True)
class PairRanking:
    ranking: np.ndarray  # [queries, K] candidate positions, best first; -1 pads pools under K
    relevant: list[set[int]]
    rankings: dict[str, list[str]]  # query id -> candidate ids, best first


def rank_pairs(examples: Sequence[Example], predictions: Sequence[Any]) -> PairRanking:
    """Rank the distinct candidates (by `candidate_id`) for every query; `predictions` holds a
    [query vector, candidate vector] pair per example, as the dual-encoder head predicts."""
    ids = list(dict.fromkeys(example["candidate_id"] for example in examples))
    position = {candidate: i for i, candidate in enumerate(ids)}
    vectors = np.asarray(predictions, dtype=np.float32)  # [pairs, 2, hidden]
    pool = np.empty((len(ids), vectors.shape[-1]), dtype=np.float32)
    for example, vector in zip(examples, vectors[:, 1]):
        pool[position[example["candidate_id"]]] = vector
    _, ranking = knn(vectors[:, 0], pool, min(K, len(ids)))
    ranking = np.pad(ranking, ((0, 0), (0, K - ranking.shape[1])), constant_values=-1)
    relevant = [{position[example["candidate_id"]]} for example in examples]
    rankings = {str(example["id"]): [ids[i] for i in row if i >= 0] for example, row in zip(examples, ranking.tolist())}
    return PairRanking(ranking, relevant, rankings)


def score_pairs(examples: Sequence[Example], predictions: Sequence[Any], language: str = "en") -> dict[str, float]:
    """mAP@20 (= MRR@20: one relevant candidate per query) and P@1 over the set's candidates."""
    ranked = rank_pairs(examples, predictions)
    hits = [int(row[0]) in relevant for row, relevant in zip(ranked.ranking, ranked.relevant)]
    return {"map@20": mean_average_precision_at_k(ranked.ranking, ranked.relevant, K),
            "p@1": 100.0 * sum(hits) / len(hits)}
