"""Transferability estimates: how much a source (intermediate) task should help a target, from arrays
alone, before anything is trained. Each is a pure function of features, labels or probabilities.

- `logme`: LogME, You et al. 2021 ("LogME: Practical Assessment of Pre-trained Models for Transfer
  Learning", ICML), the maximised log evidence of a Bayesian linear model of the labels on the
  features, per example, averaged over the one-hot label columns.
- `h_score`: Bao et al. 2019 ("An Information-Theoretic Approach to Transferability in Task Transfer
  Learning", ICIP): tr(cov(f)^-1 cov(E[f | y])).
- `transrate`: Huang et al. 2022 ("Frustratingly Easy Transferability Estimation", ICML): the coding
  rate of the centred features minus the mean coding rate of each class, as the authors' code computes it.
- `leep`: Nguyen et al. 2020 ("LEEP: A New Measure to Evaluate Transferability of Learned
  Representations", ICML), from a source head's probabilities on the target's examples.
- `embedding_similarity`: Vu et al. 2020 ("Exploring and Predicting Transferability across NLP Tasks",
  EMNLP) TextEmb, as Poth et al. 2021 use it: the cosine of the two tasks' mean text embeddings
  (Vu et al. average the encoder's last-layer token representations over the whole dataset).
- `regret_at_k`: Poth et al. 2021 ("What to Pre-Train on? Efficient Intermediate Task Selection",
  EMNLP): how much of the best source's result is lost by training the best of the top k instead.

Higher is better for every estimate. Features and probabilities are computed in float64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

LOGME_TOLERANCE = 1e-6  # relative change of alpha/beta at which the fixed point counts as reached
LOGME_MAX_ITERATIONS = 100
# Added to both update denominators, as the authors' code does: where the features fit the labels
# exactly (as many dimensions as examples) the evidence grows with beta forever; this keeps it finite.
LOGME_EPSILON = 1e-5


def _features_and_labels(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D [n, dim] array, got shape {features.shape}")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels must be one per feature row: {labels.shape} for {features.shape[0]} rows")
    if features.shape[0] < 2:
        raise ValueError("at least 2 examples are needed")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    return features, labels


def log_evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    """log p(target | features, alpha, beta) / n of the Bayesian linear model target = features @ w + noise,
    w ~ N(0, I / alpha), noise ~ N(0, 1 / beta) (LogME's equation 2), computed directly; `logme` maximises it."""
    n, d = features.shape
    a = alpha * np.eye(d) + beta * features.T @ features
    mean = beta * np.linalg.solve(a, features.T @ target)
    residual = float(np.sum((features @ mean - target) ** 2))
    evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                - beta / 2 * residual - alpha / 2 * float(mean @ mean) - np.linalg.slogdet(a)[1] / 2)
    return float(evidence / n)


def _max_log_evidence(singular: np.ndarray, projected: np.ndarray, target_norm: float, n: int, d: int) -> tuple[float, float, float]:
    """(evidence / n, alpha, beta) at MacKay's fixed point, from F's singular values s, U^T y and ||y||^2."""
    sigma = singular ** 2
    outside = max(target_norm - float(projected @ projected), 0.0)  # ||y||^2 beyond F's column space

    def terms(alpha: float, beta: float) -> tuple[np.ndarray, float, float]:
        """alpha + beta s^2, ||m||^2 and ||F m - y||^2 at the posterior mean m."""
        shrink = alpha + beta * sigma
        mean_norm = float(np.sum((beta * singular * projected / shrink) ** 2))
        return shrink, mean_norm, float(np.sum((alpha * projected / shrink) ** 2)) + outside

    alpha, beta = 1.0, 1.0
    for _ in range(LOGME_MAX_ITERATIONS):
        shrink, mean_norm, residual = terms(alpha, beta)
        gamma = float(np.sum(beta * sigma / shrink))
        new_alpha = gamma / (mean_norm + LOGME_EPSILON)
        new_beta = (n - gamma) / (residual + LOGME_EPSILON)
        if not new_beta > 0:
            break  # gamma reached n in floating point: keep the last point
        converged = abs(new_alpha / new_beta - alpha / beta) <= LOGME_TOLERANCE * (alpha / beta)
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    shrink, mean_norm, residual = terms(alpha, beta)
    log_det = float(np.sum(np.log(shrink))) + (d - len(sigma)) * np.log(alpha)
    evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                - beta / 2 * residual - alpha / 2 * mean_norm - log_det / 2)
    return evidence / n, alpha, beta


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of class labels: for each class, the maximum over (alpha, beta) of the log evidence of its
    one-hot column (`log_evidence`), per example; the mean over classes. One thin SVD of the features
    serves every class and iteration."""
    features, labels = _features_and_labels(features, labels)
    n, d = features.shape
    u, singular, _ = np.linalg.svd(features, full_matrices=False)
    evidences = []
    for value in np.unique(labels):
        target = (labels == value).astype(np.float64)
        evidences.append(_max_log_evidence(singular, u.T @ target, float(target @ target), n, d)[0])
    return float(np.mean(evidences))


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score: tr(pinv(cov(f)) cov(g)), g(x) = the mean feature of x's class; covariances over examples."""
    features, labels = _features_and_labels(features, labels)
    centred = features - features.mean(axis=0)
    class_means = np.zeros_like(centred)
    for value in np.unique(labels):
        rows = labels == value
        class_means[rows] = centred[rows].mean(axis=0)
    n = features.shape[0]
    covariance = centred.T @ centred / n
    between = class_means.T @ class_means / n
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-15, hermitian=True) @ between))


def coding_rate(features: np.ndarray, eps: float) -> float:
    """R(Z, eps) = 1/2 logdet(I + Z^T Z / (n eps)) (TransRate's code; the paper writes eps^2 / d for eps)."""
    n, d = features.shape
    gram = features.T @ features if d <= n else features @ features.T  # the same non-zero spectrum
    return float(np.linalg.slogdet(np.eye(len(gram)) + gram / (n * eps))[1] / 2)


def transrate(features: np.ndarray, labels: np.ndarray, eps: float = 1e-4) -> float:
    """TransRate: R(Z) - (1/K) sum over the K classes of R(Z_c), Z the features centred over all examples."""
    features, labels = _features_and_labels(features, labels)
    centred = features - features.mean(axis=0)
    classes = np.unique(labels)
    within = sum(coding_rate(centred[labels == value], eps) for value in classes) / len(classes)
    return coding_rate(centred, eps) - within


def leep(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """LEEP: with theta(x) the source head's distribution over its Z labels, the empirical
    P(y | z) = sum_i theta(x_i)_z [y_i = y] / sum_i theta(x_i)_z, and
    LEEP = mean_i log sum_z P(y_i | z) theta(x_i)_z."""
    probabilities = np.asarray(source_probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim != 2 or labels.shape != (probabilities.shape[0],):
        raise ValueError(f"source_probabilities must be [n, Z] with one label per row, got {probabilities.shape} "
                         f"and {labels.shape}")
    if (probabilities < 0).any() or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("each row of source_probabilities must be a probability distribution")
    classes, target = np.unique(labels, return_inverse=True)
    joint = np.zeros((len(classes), probabilities.shape[1]))
    np.add.at(joint, target, probabilities)
    joint /= len(labels)
    conditional = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-300)  # P(y | z)
    expected = np.sum(probabilities * conditional[target], axis=1)
    return float(np.mean(np.log(expected)))


def embedding_similarity(source_embeddings: np.ndarray, target_embeddings: np.ndarray,
                         source_weights: np.ndarray | None = None, target_weights: np.ndarray | None = None) -> float:
    """Cosine of the two tasks' mean embeddings (each row one example's text embedding). With weights
    (e.g. each row's token count, rows being mean token states) the means are weighted: TextEmb's
    average of token representations over the whole dataset."""
    means = []
    for name, embeddings, weights in (("source", source_embeddings, source_weights),
                                      ("target", target_embeddings, target_weights)):
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2 or len(embeddings) == 0:
            raise ValueError(f"{name}_embeddings must be a non-empty [n, dim] array, got shape {embeddings.shape}")
        if weights is not None and (np.shape(weights) != (len(embeddings),) or np.any(np.asarray(weights) < 0)
                                    or not np.sum(weights) > 0):
            raise ValueError(f"{name}_weights must be one non-negative weight per row, not all 0")
        means.append(np.average(embeddings, axis=0, weights=weights))
    if means[0].shape != means[1].shape:
        raise ValueError(f"embedding dimensions differ: {means[0].shape[0]} vs {means[1].shape[0]}")
    norms = np.linalg.norm(means[0]) * np.linalg.norm(means[1])
    return float(means[0] @ means[1] / norms) if norms > 0 else 0.0


# The estimates `python -m stilts.rank` computes, in its table's order (its `method=` orders the rows
# by one of them): those on encoder features of the target's rows, those that need the candidate's
# trained stage, and all of them, after the static baseline (DataSize, Vu et al. 2020: the candidate's
# training examples, which later work finds hard to beat) and the text similarity. The only list of
# estimator names.
FEATURE_ESTIMATORS = {"logme": logme, "h_score": h_score, "transrate": transrate}
STAGE_ESTIMATES = (*FEATURE_ESTIMATORS, "leep")
DATA_SIZE = "data_size"
ESTIMATES = (DATA_SIZE, "text_similarity", *STAGE_ESTIMATES)


def regret_at_k(estimates: Mapping[str, float], results: Mapping[str, float], k: int) -> float:
    """Regret@k in percent (Poth et al. 2021): (O - M_k) / O x 100, O the best result over all sources,
    M_k the best result among the k sources the estimates rank highest. 0 when the best is in the top k."""
    if not 1 <= k <= len(estimates):
        raise ValueError(f"k must be between 1 and the number of sources ({len(estimates)}), got {k}")
    missing = sorted(set(estimates) - set(results))
    if missing:
        raise ValueError(f"no result for {', '.join(missing)}")
    ranked: Sequence[str] = sorted(estimates, key=lambda source: -estimates[source])
    best = max(results[source] for source in estimates)
    best_of_top = max(results[source] for source in ranked[:k])
    if best == 0:
        return 0.0
    return float((best - best_of_top) / abs(best) * 100.0)
