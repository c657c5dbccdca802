import importlib.util

import numpy as np
import pytest
import torch

from stilts.eval.retrieval import (
    bucc_candidates,
    bucc_extract,
    bucc_scores,
    bucc_threshold,
    knn,
    mean_average_precision_at_k,
    mean_reciprocal_rank_at_k,
    tatoeba_accuracy,
)
from tests.vectors import brute_knn, unit_rows

HAS_FAISS = importlib.util.find_spec("faiss") is not None
needs_faiss = pytest.mark.skipif(not HAS_FAISS, reason="faiss is not installed; the faiss backend is optional")


# ---------------------------------------------------------------------------------------------- knn


@pytest.mark.parametrize(
    ("n_queries", "n_keys", "dim", "k", "chunk_size"),
    [
        (37, 53, 16, 5, 8),  # several query and key chunks, ragged last chunks
        (37, 53, 16, 20, 8),  # k larger than a key chunk: the running top-k must merge across chunks
        (64, 10, 8, 10, 3),  # k equal to the number of keys
        (5, 200, 32, 7, 1000),  # one chunk holds everything
        (1, 9, 4, 3, 2),
    ],
)
def test_knn_torch_matches_brute_force(n_queries, n_keys, dim, k, chunk_size) -> None:
    queries, keys = unit_rows(1, n_queries, dim), unit_rows(2, n_keys, dim)
    scores, indices = knn(queries, keys, k, chunk_size=chunk_size, backend="torch")
    expected_scores, expected_indices = brute_knn(queries, keys, k)
    assert scores.dtype == np.float32 and indices.dtype == np.int64
    assert scores.shape == indices.shape == (n_queries, k)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first


def test_knn_accepts_torch_tensors_and_other_dtypes() -> None:
    queries, keys = unit_rows(3, 20, 12), unit_rows(4, 30, 12)
    from_numpy = knn(queries, keys, 4, chunk_size=7, backend="torch")
    from_torch = knn(torch.from_numpy(queries).double(), torch.from_numpy(keys), 4, chunk_size=7, backend="torch")
    np.testing.assert_array_equal(from_numpy[1], from_torch[1])
    np.testing.assert_allclose(from_numpy[0], from_torch[0], rtol=1e-6)
    assert isinstance(from_torch[0], np.ndarray) and isinstance(from_torch[1], np.ndarray)
    np.testing.assert_array_equal(knn(queries, keys, np.int64(4), backend="torch")[1], from_numpy[1])


@needs_faiss
def test_knn_faiss_and_torch_agree() -> None:
    queries, keys = unit_rows(5, 300, 32), unit_rows(6, 250, 32)
    faiss_scores, faiss_indices = knn(queries, keys, 10, backend="faiss")
    torch_scores, torch_indices = knn(queries, keys, 10, chunk_size=64, backend="torch")
    np.testing.assert_array_equal(faiss_indices, torch_indices)
    np.testing.assert_allclose(faiss_scores, torch_scores, rtol=1e-5, atol=1e-6)
    assert faiss_scores.dtype == np.float32 and faiss_indices.dtype == np.int64
    auto_scores, auto_indices = knn(queries, keys, 10, backend="auto")
    np.testing.assert_array_equal(auto_indices, faiss_indices)


def test_knn_refuses_bad_input() -> None:
    queries, keys = unit_rows(7, 4, 8), unit_rows(8, 6, 8)
    with pytest.raises(ValueError, match="7 neighbours from 6 keys"):
        knn(queries, keys, 7, backend="torch")
    with pytest.raises(ValueError, match="dimension 8 but keys have dimension 5"):
        knn(queries, keys[:, :5], 2, backend="torch")
    with pytest.raises(ValueError, match="unknown backend"):
        knn(queries, keys, 2, backend="annoy")
    with pytest.raises(ValueError, match="chunk_size"):
        knn(queries, keys, 2, chunk_size=0, backend="torch")
    queries[1, 3] = np.nan
    with pytest.raises(ValueError, match="queries contains NaN"):
        knn(queries, keys, 2, backend="torch")


# --------------------------------------------------------------------------------------------- BUCC


def brute_force_mining(source: np.ndarray, target: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """mine_bitext (max retrieval, ratio margin) written out over the full float64 similarity matrix."""
    x = source / np.linalg.norm(source, axis=1, keepdims=True)
    y = target / np.linalg.norm(target, axis=1, keepdims=True)
    sims = x.astype(np.float64) @ y.astype(np.float64).T
    k_x, k_y = min(k, len(y)), min(k, len(x))
    source_mean = -np.sort(-sims, axis=1)[:, :k_x].mean(axis=1)
    target_mean = -np.sort(-sims, axis=0)[:k_y, :].mean(axis=0)
    margin = sims / ((source_mean[:, None] + target_mean[None, :]) / 2)
    proposals = []
    for i in range(len(x)):
        nearest = np.argsort(-sims[i])[:k_x]
        j = nearest[np.argmax(margin[i, nearest])]
        proposals.append((margin[i, j], i, j))
    for j in range(len(y)):
        nearest = np.argsort(-sims[:, j])[:k_y]
        i = nearest[np.argmax(margin[nearest, j])]
        proposals.append((margin[i, j], i, j))
    proposals.sort(key=lambda proposal: -proposal[0])
    used_sources, used_targets, mined = set(), set(), []
    for score, i, j in proposals:
        if i not in used_sources and j not in used_targets:
            used_sources.add(i)
            used_targets.add(j)
            if score > 0:
                mined.append((int(i), int(j), float(score)))
    return mined


@pytest.mark.parametrize(
    ("n_source", "n_target", "dim", "k", "backend"),
    [
        (40, 55, 16, 4, "torch"),
        (60, 30, 8, 4, "torch"),
        (3, 12, 8, 4, "torch"),  # k capped at the 3 sources for the target side
        (25, 25, 6, 2, "torch"),
        pytest.param(40, 55, 16, 4, "faiss", marks=needs_faiss),
    ],
)
def test_bucc_candidates_match_brute_force(n_source, n_target, dim, k, backend) -> None:
    rng = np.random.default_rng(n_source * 100 + n_target)
    source = rng.standard_normal((n_source, dim)).astype(np.float32)  # not normalised: bucc_candidates must
    target = rng.standard_normal((n_target, dim)).astype(np.float32)
    mined = bucc_candidates(source, target, k=k, backend=backend)
    expected = brute_force_mining(source, target, k)
    assert [(i, j) for i, j, _ in mined] == [(i, j) for i, j, _ in expected]
    np.testing.assert_allclose([s for *_, s in mined], [s for *_, s in expected], rtol=1e-5)
    assert len({i for i, _, _ in mined}) == len({j for _, j, _ in mined}) == len(mined)  # one-to-one
    assert len(mined) >= min(n_source, n_target) // 2


def test_bucc_ratio_margin_by_hand() -> None:
    """Source 3 (20 degrees) is nearest to target 0 (1 degree) by cosine, but target 0 is a hub beside
    sources 0, 1 and 2, so the ratio margin prefers the lonely target 1 (42 degrees)."""

    def at(*degrees: float) -> np.ndarray:
        radians = np.deg2rad(degrees)
        return np.stack([np.cos(radians), np.sin(radians)], axis=1)

    def cos(degrees: float) -> float:
        return float(np.cos(np.deg2rad(degrees)))

    mined = bucc_candidates(at(0.0, 2.0, -2.0, 20.0), at(1.0, 42.0), k=2, backend="torch")
    assert [(i, j) for i, j, _ in mined] == [(2, 0), (3, 1)]
    source_3_mean = (cos(19) + cos(22)) / 2  # its 2 nearest targets
    source_2_mean = (cos(3) + cos(44)) / 2
    target_0_mean = (cos(1) + cos(1)) / 2  # its 2 nearest sources: 0 and 2 degrees
    target_1_mean = (cos(22) + cos(40)) / 2  # its 2 nearest sources: 20 and 2 degrees
    assert mined[0][2] == pytest.approx(cos(3) / ((source_2_mean + target_0_mean) / 2), rel=1e-5)
    assert mined[1][2] == pytest.approx(cos(22) / ((source_3_mean + target_1_mean) / 2), rel=1e-5)
    assert cos(19) > cos(22)
    assert cos(19) / ((source_3_mean + target_0_mean) / 2) < mined[1][2]


def test_bucc_pairs_at_or_below_margin_zero_are_matched_but_not_output() -> None:
    radians = np.deg2rad([0.0, 12.0, 5.0, 170.0])
    points = np.stack([np.cos(radians), np.sin(radians)], axis=1)
    source, target = points[:2], points[2:]
    # Target 1 (170 degrees) proposes source 1 with cosine -0.93 over a denominator near +0.03: margin
    # about -29, so mine_bitext's `score > 0` drops it; source 1 is used up all the same.
    for mined in (brute_force_mining(source, target, 1), bucc_candidates(source, target, k=1, backend="torch")):
        assert [(i, j) for i, j, _ in mined] == [(0, 0)]
        assert mined[0][2] == pytest.approx(1.0)  # with k=1 a mutual nearest pair has margin cos / cos


def test_identical_sides_mine_themselves_and_score_100() -> None:
    embeddings = unit_rows(9, 80, 24)
    mined = bucc_candidates(embeddings, embeddings, backend="torch")
    assert sorted((i, j) for i, j, _ in mined) == [(i, i) for i in range(80)]
    with_ids = [(f"de-{i:06d}", f"en-{j:06d}", score) for i, j, score in mined]
    gold = {(f"de-{i:06d}", f"en-{i:06d}") for i in range(80)}
    threshold = bucc_threshold(with_ids, gold)
    # Every candidate is right, so F1 peaks at the last one: bucc_optimize would raise IndexError there.
    assert threshold == min(score for *_, score in with_ids)
    assert bucc_extract(with_ids, threshold) == gold
    assert bucc_scores(bucc_extract(with_ids, threshold), gold) == {"f1": 100.0, "precision": 100.0, "recall": 100.0}


HAND_CANDIDATES = [
    ("a", "A", 0.9),  # right
    ("b", "X", 0.8),  # wrong
    ("c", "C", 0.7),  # right
    ("d", "D", 0.6),  # right
    ("e", "Y", 0.5),  # wrong
    ("f", "Z", 0.4),  # wrong
]
HAND_GOLD = {("a", "A"), ("c", "C"), ("d", "D"), ("g", "G")}  # (g, G) was never mined: recall counts it


def sweep_best_f1(candidates, gold) -> float:
    """Try every candidate score as the threshold (score >= threshold kept) and keep the best F1."""
    return max(
        bucc_scores({(s, t) for s, t, score in candidates if score >= threshold}, gold)["f1"]
        for *_, threshold in candidates
    )


def test_bucc_threshold_on_a_hand_made_list() -> None:
    # Prefix F1: 0.4, 0.33, 0.57, 0.75 (a, b, c, d), 0.67, 0.6: best after d, so halfway between 0.6 and 0.5.
    threshold = bucc_threshold(HAND_CANDIDATES, HAND_GOLD)
    assert threshold == pytest.approx(0.55)
    assert bucc_threshold(list(reversed(HAND_CANDIDATES)), HAND_GOLD) == pytest.approx(0.55)
    predicted = bucc_extract(HAND_CANDIDATES, threshold)
    assert predicted == {("a", "A"), ("b", "X"), ("c", "C"), ("d", "D")}
    scores = bucc_scores(predicted, HAND_GOLD)
    assert scores == pytest.approx({"f1": 75.0, "precision": 75.0, "recall": 75.0})
    assert scores["f1"] == pytest.approx(sweep_best_f1(HAND_CANDIDATES, HAND_GOLD))


@pytest.mark.parametrize("seed", range(5))
def test_bucc_threshold_matches_a_sweep_over_every_score(seed) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.permutation(np.linspace(0.5, 1.5, 120))  # distinct scores
    candidates = [(f"s{i}", f"t{i if rng.random() < 0.6 else i + 1000}", float(s)) for i, s in enumerate(scores)]
    gold = {(f"s{i}", f"t{i}") for i in range(140)}  # 20 gold pairs were never mined
    threshold = bucc_threshold(candidates, gold)
    assert bucc_scores(bucc_extract(candidates, threshold), gold)["f1"] == pytest.approx(
        sweep_best_f1(candidates, gold)
    )


def test_bucc_threshold_edge_cases() -> None:
    # No candidate is right: the threshold stays at bucc_optimize's initial 0.
    assert bucc_threshold([("a", "B", 0.9), ("b", "A", 0.8)], {("a", "A")}) == 0.0
    with pytest.raises(ValueError, match="empty gold"):
        bucc_threshold(HAND_CANDIDATES, set())
    # A pair listed twice keeps its highest score, as read_candidate2score does.
    assert bucc_extract([("a", "A", 0.3), ("b", "B", 0.6), ("a", "A", 0.9)], 0.5) == {("a", "A"), ("b", "B")}
    assert bucc_extract(HAND_CANDIDATES, 0.7) == {("a", "A"), ("b", "X"), ("c", "C")}  # >= keeps 0.7


def test_bucc_scores_by_hand() -> None:
    predicted = {("a", "A"), ("b", "B"), ("c", "X")}
    gold = {("a", "A"), ("b", "B"), ("d", "D"), ("e", "E")}
    scores = bucc_scores(predicted, gold)
    assert scores["precision"] == pytest.approx(200 / 3)
    assert scores["recall"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(400 / 7)  # 2 * (2/3) * (1/2) / (2/3 + 1/2) = 4/7
    assert bucc_scores({("c", "X")}, gold) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert bucc_scores(set(), gold) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


# ------------------------------------------------------------------------------------------ Tatoeba


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=needs_faiss)])
def test_tatoeba_identity_and_permutation(backend) -> None:
    source = unit_rows(10, 10, 16)
    assert tatoeba_accuracy(source, source, backend=backend) == 100.0
    # Target j is source perm[j]: right only where perm[j] == j, i.e. at 7, 8 and 9.
    permutation = [1, 0, 3, 2, 5, 6, 4, 7, 8, 9]
    assert tatoeba_accuracy(source, source[permutation], backend=backend) == pytest.approx(30.0)
    # Row lengths do not matter: XTREME normalises both sides.
    scale = np.random.default_rng(11).uniform(0.1, 10.0, size=(10, 1)).astype(np.float32)
    assert tatoeba_accuracy(source * scale, source[permutation], backend=backend) == pytest.approx(30.0)


def test_tatoeba_queries_with_the_english_side() -> None:
    def at(*degrees: float) -> np.ndarray:
        radians = np.deg2rad(degrees)
        return np.stack([np.cos(radians), np.sin(radians)], axis=1)

    xx, english = at(0.0, 90.0), at(20.0, 30.0)
    # English 30 degrees is nearer to xx 0 than to xx 90, so English -> xx gets 1 of 2 right ...
    assert tatoeba_accuracy(xx, english, backend="torch") == 50.0
    # ... while xx -> English would get both (xx 90 is nearest to English 30).
    assert tatoeba_accuracy(english, xx, backend="torch") == 100.0
    with pytest.raises(ValueError, match="line-aligned"):
        tatoeba_accuracy(xx, english[:1], backend="torch")


# ---------------------------------------------------------------------------------- mAP@k and MRR@k


def test_average_precision_by_hand() -> None:
    rankings = np.array([[5, 9, 3, 1]])
    # Relevant at ranks 1 and 3 of 2 relevant: (1/1 + 2/3) / 2.
    assert mean_average_precision_at_k(rankings, [{5, 3}], k=4) == pytest.approx(100 * (1 + 2 / 3) / 2)
    # Cut at k=2 the second hit is lost, but the divisor is min(2 relevant, k=2) = 2.
    assert mean_average_precision_at_k(rankings, [{5, 3}], k=2) == pytest.approx(50.0)
    # More relevant than k: divide by k, so a perfect top 2 scores 100.
    assert mean_average_precision_at_k(np.array([[5, 3, 9]]), [{5, 3, 7, 8}], k=2) == pytest.approx(100.0)
    # A repeated candidate counts once (utils_lareqa skips predictions seen earlier).
    assert mean_average_precision_at_k(np.array([[5, 5, 3]]), [{5, 3}], k=3) == pytest.approx(100 * (1 + 2 / 3) / 2)
    # Nothing relevant in the top k, even if it is at rank k + 1.
    assert mean_average_precision_at_k(np.array([[1, 2, 3, 7]]), [{7}], k=3) == 0.0
    assert mean_reciprocal_rank_at_k(np.array([[1, 2, 3, 7]]), [{7}], k=3) == 0.0
    # Mean over queries.
    two = np.array([[5, 9, 3], [0, 1, 2]])
    assert mean_average_precision_at_k(two, [{5, 3}, {1}], k=3) == pytest.approx(100 * ((1 + 2 / 3) / 2 + 1 / 2) / 2)


def test_reciprocal_rank_by_hand() -> None:
    rankings = np.array([[4, 2, 7], [1, 0, 3], [9, 8, 6]])
    assert mean_reciprocal_rank_at_k(rankings, [{7}, {1}, {5}], k=3) == pytest.approx(100 * (1 / 3 + 1 + 0) / 3)
    # Several relevant: MRR only sees the first, mAP all of them.
    assert mean_reciprocal_rank_at_k(np.array([[5, 9, 3]]), [{5, 3}], k=3) == 100.0
    assert mean_average_precision_at_k(np.array([[5, 9, 3]]), [{5, 3}], k=3) == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_map_equals_mrr_with_one_relevant_candidate() -> None:
    queries, candidates = unit_rows(12, 50, 8), unit_rows(13, 300, 8)
    _, rankings = knn(queries, candidates, 25, chunk_size=64, backend="torch")
    rng = np.random.default_rng(14)
    # Gold sits at a random rank in 0..29 of each query's list: some inside the top 20, some outside.
    _, full = knn(queries, candidates, 30, backend="torch")
    relevant = [{int(full[q, rng.integers(0, 30)])} for q in range(50)]
    mrr = mean_reciprocal_rank_at_k(rankings, relevant, k=20)
    assert mean_average_precision_at_k(rankings, relevant, k=20) == pytest.approx(mrr)
    expected = np.mean([1 / (list(full[q]).index(next(iter(relevant[q]))) + 1)
                        if next(iter(relevant[q])) in full[q, :20] else 0.0 for q in range(50)])
    assert mrr == pytest.approx(100 * expected)
    assert 0 < mrr < 100


def test_scores_rank_like_rankings() -> None:
    queries, candidates = unit_rows(15, 12, 6), unit_rows(16, 40, 6)
    scores = queries @ candidates.T
    _, rankings = brute_knn(queries, candidates, 40)
    relevant = [set(np.random.default_rng(q).choice(40, size=3, replace=False).tolist()) for q in range(12)]
    for k in (1, 5, 20, 60):  # 60 > 40 candidates: a score matrix ranks all of them
        by_scores = mean_average_precision_at_k(scores, relevant, k=k)
        by_rankings = mean_average_precision_at_k(rankings, relevant, k=min(k, 40)) if k <= 40 else None
        if by_rankings is not None:
            assert by_scores == pytest.approx(by_rankings)
        assert mean_reciprocal_rank_at_k(torch.from_numpy(scores), relevant, k=k) == pytest.approx(
            mean_reciprocal_rank_at_k(rankings, relevant, k=min(k, 40))
        )


def test_ranking_metrics_refuse_bad_input() -> None:
    rankings = np.array([[1, 2, 3]])
    with pytest.raises(ValueError, match="no relevant candidate"):
        mean_average_precision_at_k(rankings, [set()], k=3)
    with pytest.raises(ValueError, match="fewer than k=20"):
        mean_reciprocal_rank_at_k(rankings, [{1}])
    with pytest.raises(ValueError, match="1 ranked queries but 2 relevant sets"):
        mean_average_precision_at_k(rankings, [{1}, {2}], k=3)
    with pytest.raises(TypeError, match="integer indices or float scores"):
        mean_average_precision_at_k(np.array([[True, False]]), [{1}], k=1)
