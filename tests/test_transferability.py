"""Transferability estimators against their published formulas on cases whose answer is known."""

import numpy as np
import pytest
from scipy import optimize

from stilts.eval.transferability import (
    coding_rate,
    embedding_similarity,
    h_score,
    leep,
    log_evidence,
    logme,
    regret_at_k,
    transrate,
)


def separable(seed: int, n: int = 120, dim: int = 6, classes: int = 3, spread: float = 4.0):
    """Gaussian clusters around well-separated class centres, and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, dim)) * spread
    return centres[labels] + rng.standard_normal((n, dim)), labels


# -------------------------------------------------------------------------------------------- LogME


def test_logme_is_the_maximum_of_the_log_evidence() -> None:
    """For each class column, the fixed point LogME reaches is the maximum over (alpha, beta) of the
    evidence of LogME's equation 2, computed densely; LogME is their mean."""
    features, labels = separable(0, n=40, dim=5)
    per_class = []
    for value in np.unique(labels):
        target = (labels == value).astype(float)
        best = optimize.minimize(lambda logs: -log_evidence(features, target, *np.exp(logs)), x0=[0.0, 0.0],
                                 method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
        per_class.append(-best.fun)
    assert logme(features, labels) == pytest.approx(np.mean(per_class), abs=1e-5)


def test_logme_with_more_dimensions_than_examples() -> None:
    """Fewer examples than dimensions (the thin SVD has n singular values; the prior's log det counts
    the other d - n directions): the evidence at the point LogME returns is the dense formula's."""
    from stilts.eval.transferability import _max_log_evidence

    features, labels = separable(1, n=12, dim=30)
    target = (labels == labels[0]).astype(float)
    u, singular, _ = np.linalg.svd(features, full_matrices=False)
    evidence, alpha, beta = _max_log_evidence(singular, u.T @ target, float(target @ target), 12, 30)
    assert np.isfinite(evidence) and alpha > 0 and beta > 0
    assert evidence == pytest.approx(log_evidence(features, target, alpha, beta), rel=1e-6)
    for factor in (0.5, 2.0):  # a maximum along both axes
        assert evidence >= log_evidence(features, target, alpha * factor, beta) - 1e-9
    assert np.isfinite(logme(features, labels))


def test_logme_prefers_separable_labels_to_shuffled_ones() -> None:
    features, labels = separable(2)
    shuffled = np.random.default_rng(3).permutation(labels)
    assert logme(features, labels) > logme(features, shuffled) + 0.1


# ------------------------------------------------------------------------------------------ H-score


def test_h_score_by_hand() -> None:
    """1-D features: H = var(E[f | y]) / var(f). f = 0,1,2,3 with classes {0,1}, {2,3}: 1 / 1.25."""
    assert h_score(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])) == pytest.approx(0.8)
    assert h_score(np.array([[0.0], [0.0], [2.0], [2.0]]), np.array([0, 0, 1, 1])) == pytest.approx(1.0)


def test_h_score_matches_the_direct_formula() -> None:
    features, labels = separable(4, dim=4)
    class_means = np.stack([features[labels == label].mean(axis=0) for label in labels])
    expected = np.trace(np.linalg.inv(np.cov(features.T, bias=True)) @ np.cov(class_means.T, bias=True))
    assert h_score(features, labels) == pytest.approx(expected, rel=1e-9)
    assert h_score(features, labels) > h_score(features, np.random.default_rng(5).permutation(labels))


# ---------------------------------------------------------------------------------------- TransRate


def test_coding_rate_by_hand() -> None:
    """Z = [[1], [-1]]: R = 1/2 log(1 + 2 / (2 eps))."""
    assert coding_rate(np.array([[1.0], [-1.0]]), eps=0.5) == pytest.approx(0.5 * np.log(3.0))
    wide = np.random.default_rng(6).standard_normal((3, 8))  # n < d: the n x n Gram matrix, same determinant
    assert coding_rate(wide, 0.1) == pytest.approx(0.5 * np.linalg.slogdet(np.eye(8) + wide.T @ wide / 0.3)[1])


def test_transrate_is_the_rate_reduction() -> None:
    features, labels = separable(7, dim=3)
    centred = features - features.mean(axis=0)
    expected = coding_rate(centred, 1e-4) - np.mean([coding_rate(centred[labels == c], 1e-4) for c in range(3)])
    assert transrate(features, labels) == pytest.approx(expected)
    assert transrate(features, labels) > transrate(features, np.random.default_rng(8).permutation(labels))


# --------------------------------------------------------------------------------------------- LEEP


def test_leep_by_hand() -> None:
    """A source head that already predicts the target labels with certainty: P(y | z) is 1 for its
    own label, so LEEP = log 1 = 0. A uniform head carries no information: LEEP = sum_y p(y) log p(y)."""
    labels = np.array([0, 1, 1, 0, 1])
    assert leep(np.eye(2)[labels], labels) == pytest.approx(0.0)
    uniform = np.full((5, 3), 1 / 3)
    assert leep(uniform, labels) == pytest.approx(0.4 * np.log(0.4) + 0.6 * np.log(0.6))


def test_leep_prefers_an_informative_head() -> None:
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 3, 200)
    informative = np.eye(4)[np.where(rng.random(200) < 0.8, labels, rng.integers(0, 4, 200))] * 0.9 + 0.025
    noise = rng.dirichlet(np.ones(4), 200)
    assert leep(informative, labels) > leep(noise, labels)
    with pytest.raises(ValueError, match="probability distribution"):
        leep(informative * 2, labels)


# ------------------------------------------------------------------------------ similarity and regret


def test_embedding_similarity() -> None:
    rows = np.random.default_rng(10).standard_normal((20, 4))
    assert embedding_similarity(rows, rows[::-1]) == pytest.approx(1.0)
    assert embedding_similarity(np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([[0.0, 2.0]])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="dimensions differ"):
        embedding_similarity(rows, rows[:, :3])


def test_token_weighted_similarity_is_the_dataset_token_mean() -> None:
    """Rows that are per-sequence mean token states, weighted by their token counts, average to the
    mean over every token of the dataset (Vu et al.'s TextEmb): checked against the tokens themselves."""
    rng = np.random.default_rng(11)
    sequences = [rng.standard_normal((length, 3)) for length in (1, 5, 9)]
    rows = np.stack([tokens.mean(axis=0) for tokens in sequences])
    counts = np.array([len(tokens) for tokens in sequences])
    target = rng.standard_normal((4, 3))
    every_token = np.concatenate(sequences).mean(axis=0)
    expected = every_token @ target.mean(axis=0) / np.linalg.norm(every_token) / np.linalg.norm(target.mean(axis=0))
    assert embedding_similarity(rows, target, source_weights=counts) == pytest.approx(expected)
    assert embedding_similarity(rows, target) != pytest.approx(expected)
    with pytest.raises(ValueError, match="source_weights"):
        embedding_similarity(rows, target, source_weights=np.zeros(3))


def test_regret_at_k_by_hand() -> None:
    """Sources ranked c > a > b; real results a 50, b 80, c 40: the best (b) is ranked last."""
    estimates = {"a": 0.5, "b": 0.1, "c": 0.9}
    results = {"a": 50.0, "b": 80.0, "c": 40.0}
    assert regret_at_k(estimates, results, 1) == pytest.approx(50.0)  # (80 - 40) / 80
    assert regret_at_k(estimates, results, 2) == pytest.approx(37.5)  # (80 - 50) / 80
    assert regret_at_k(estimates, results, 3) == 0.0
    with pytest.raises(ValueError, match="no result for"):
        regret_at_k({**estimates, "d": 1.0}, results, 1)


def test_estimators_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="one per feature row"):
        logme(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        h_score(np.full((4, 2), np.nan), np.zeros(4))
