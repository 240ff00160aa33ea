"""Paired significance tests for two models scored on the same patients (``strokebench compare``).

McNemar's exact test (classification: is one model right more often than the other?)
    Each patient is either right or wrong under model A and under model B. Only the discordant patients
    carry information: ``b`` = A right and B wrong, ``c`` = A wrong and B right. Under the null hypothesis
    that both models are equally accurate, ``b`` given ``b + c`` is Binomial(b + c, 1/2), so the exact
    two-sided p-value is ``min(1, 2 * P(X <= min(b, c)))`` with X ~ Binomial(b + c, 1/2); it is 1 when
    there are no discordant patients. This is ``statsmodels.stats.contingency_tables.mcnemar(exact=True)``
    and, by the symmetry of Binomial(n, 1/2), ``scipy.stats.binomtest(min(b, c), b + c).pvalue``. The tail
    is summed in log space, its largest term from Loader's saddle-point formula for the binomial
    probability (accurate to ~1e-15 relative where ``lgamma`` differences lose up to ~1e-8 at a few
    million), so ``b + c`` may run to millions.

DeLong's test (scores: do two models have the same area under the ROC curve?)
    With m positives X_1..X_m and n negatives Y_1..Y_n, psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise.
    The AUC is the mean of psi over all m * n pairs (the Mann-Whitney statistic; ties count one half, as in
    scikit-learn's ``roc_auc_score``). The structural components (placement values) are
    ``V10_i = mean_j psi(X_i, Y_j)`` and ``V01_j = mean_i psi(X_i, Y_j)``. For the two models, S10 and S01
    are the 2 x 2 sample covariance matrices (ddof = 1) of the V10 and V01 vectors, and the covariance of
    the two AUCs is ``S = S10 / m + S01 / n``. The statistic is
    ``z = (auc_a - auc_b) / sqrt(S_aa + S_bb - 2 S_ab)`` with two-sided p-value ``erfc(|z| / sqrt 2)``,
    as pROC's ``roc.test(method = "delong", paired = TRUE)``. The components are computed in
    O(N log N) from midranks (Sun & Xu 2014): with T_X, T_Y, T_Z the midranks of a positive among the
    positives, of a negative among the negatives and of either among all N = m + n scores,
    ``V10 = (T_Z - T_X) / n`` and ``V01 = 1 - (T_Z - T_Y) / m``. Degenerate cases: when the two AUCs are
    equal the statistic is 0 and p = 1 (as pROC); when they differ but the variance of the difference is
    0 (both models' placement values constant, e.g. a perfect model against a constant one) there is no
    finite z, so the statistic is None and p = 0.

References:
    McNemar Q. Note on the sampling error of the difference between correlated proportions or
    percentages. Psychometrika 1947;12:153-157.
    Loader C. Fast and accurate computation of binomial probabilities. 2000 (the algorithm of R's dbinom).
    DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated receiver
    operating characteristic curves: a nonparametric approach. Biometrics 1988;44:837-845.
    Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under correlated
    receiver operating characteristic curves. IEEE Signal Processing Letters 2014;21(11):1389-1393.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict

_LOG_2PI = math.log(2.0 * math.pi)
_STIRLING = (1.0 / 12, 1.0 / 360, 1.0 / 1260, 1.0 / 1680, 1.0 / 1188)


class PairedTest(BaseModel):
    """The result of one paired test of model A against model B."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # "McNemar (exact)" or "DeLong"
    statistic: float | None  # McNemar: min(b, c); DeLong: z (None when the difference has zero variance)
    p_value: float
    detail: dict[str, float]  # McNemar: b, c; DeLong: auc_a, auc_b, difference, se


# ---------------------------------------------------------------------------------------------------------
# McNemar


def _binary_vector(values: np.ndarray, what: str) -> np.ndarray:
    """Return ``values`` as a 1-D boolean array, or raise ValueError unless it holds only 0/1 (or bools)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    if array.dtype != np.bool_ and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{what} must hold only 0/1 (or True/False) values")
    return array.astype(bool)


def _stirling_error(n: int) -> float:
    """Return log(n!) - [(n + 1/2) log n - n + log(2 pi) / 2], the error of Stirling's formula, for n >= 1."""
    if n <= 15:
        return math.lgamma(n + 1) - (n + 0.5) * math.log(n) + n - 0.5 * _LOG_2PI
    s0, s1, s2, s3, s4 = _STIRLING
    nn = float(n) * n
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _deviance_term(x: float, mu: float) -> float:
    """Return x log(x / mu) + mu - x without cancellation when x is close to mu (Loader's bd0)."""
    if abs(x - mu) < 0.1 * (x + mu):
        v = (x - mu) / (x + mu)
        total = (x - mu) * v
        term = 2.0 * x * v
        v2 = v * v
        j = 1
        while True:
            term *= v2
            updated = total + term / (2 * j + 1)
            if updated == total:
                return updated
            total = updated
            j += 1
    return x * math.log(x / mu) + mu - x


def _log_binomial_half_pmf(k: int, n: int) -> float:
    """Return log P(X = k) for X ~ Binomial(n, 1/2), 0 <= k <= n, by Loader's saddle-point formula."""
    if k in (0, n):
        return -n * math.log(2.0)
    half = n / 2.0
    log_c = (
        _stirling_error(n)
        - _stirling_error(k)
        - _stirling_error(n - k)
        - _deviance_term(k, half)
        - _deviance_term(n - k, half)
    )
    log_f = _LOG_2PI + math.log(k) + math.log1p(-k / n)
    return log_c - 0.5 * log_f


def _log_binomial_half_cdf(k: int, n: int) -> float:
    """Return log P(X <= k) for X ~ Binomial(n, 1/2) and 0 <= k <= n / 2, summed in log space."""
    # P(X = j - 1) / P(X = j) = j / (n - j + 1) < 1 for j <= n / 2: terms fall from j = k down to j = 0.
    j = np.arange(k, 0, -1, dtype=np.float64)
    log_relative = np.concatenate(([0.0], np.cumsum(np.log(j / (n - j + 1)))))
    return _log_binomial_half_pmf(k, n) + math.log(float(np.exp(log_relative).sum()))


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> PairedTest:
    """Exact two-sided McNemar test of paired 0/1 correctness vectors (1 = the model was right).

    Returns a PairedTest named "McNemar (exact)" whose statistic is min(b, c), whose p-value is
    min(1, 2 P(X <= min(b, c))) with X ~ Binomial(b + c, 1/2) (1 when b + c = 0), and whose detail holds
    b (A right, B wrong) and c (A wrong, B right). Raises ValueError if the vectors differ in length or hold
    anything but 0/1.
    """
    a = _binary_vector(correct_a, "correct_a")
    b_vector = _binary_vector(correct_b, "correct_b")
    if a.shape != b_vector.shape:
        raise ValueError(f"correct_a and correct_b differ in length ({a.size} != {b_vector.size})")
    b = int(np.count_nonzero(a & ~b_vector))
    c = int(np.count_nonzero(~a & b_vector))
    n, k = b + c, min(b, c)
    p_value = 1.0 if n == 0 or b == c else min(1.0, math.exp(math.log(2.0) + _log_binomial_half_cdf(k, n)))
    return PairedTest(
        name="McNemar (exact)", statistic=float(k), p_value=p_value, detail={"b": float(b), "c": float(c)}
    )


# ---------------------------------------------------------------------------------------------------------
# DeLong


def _midranks(values: np.ndarray) -> np.ndarray:
    """Return the 1-based ranks of ``values`` (1-D), tied values sharing the mean of their ranks."""
    ordered = np.sort(values)
    below = np.searchsorted(ordered, values, side="left")
    through = np.searchsorted(ordered, values, side="right")
    return np.asarray((below + through + 1) / 2.0)


def _delong_covariance(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the AUCs (K,) of K score vectors (K, N) and DeLong's covariance matrix of them (K, K).

    ``truth`` is a boolean vector (N,) with at least two positives and two negatives. Placement values by
    midranks (Sun & Xu 2014); covariance S10 / m + S01 / n with sample covariances (ddof = 1).
    """
    positives, negatives = scores[:, truth], scores[:, ~truth]
    m, n = positives.shape[1], negatives.shape[1]
    aucs = np.empty(scores.shape[0])
    v10 = np.empty((scores.shape[0], m))
    v01 = np.empty((scores.shape[0], n))
    for r in range(scores.shape[0]):
        tx = _midranks(positives[r])
        ty = _midranks(negatives[r])
        tz = _midranks(np.concatenate((positives[r], negatives[r])))
        aucs[r] = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
        v10[r] = (tz[:m] - tx) / n
        v01[r] = 1.0 - (tz[m:] - ty) / m
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, covariance


def delong(truth: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> PairedTest:
    """DeLong's test of two correlated ROC AUCs on the same patients (fast midrank algorithm, Sun & Xu 2014).

    ``truth`` holds 0/1 (1 = positive); higher scores mean more likely positive. Returns a PairedTest named
    "DeLong" whose statistic is z = (auc_a - auc_b) / se and p-value erfc(|z| / sqrt 2), with detail auc_a,
    auc_b, difference (auc_a - auc_b) and se (the standard error of the difference). Equal AUCs give
    statistic 0 and p = 1; different AUCs whose difference has zero variance give statistic None and p = 0.
    Raises ValueError if the lengths differ, truth is not 0/1 or holds one class only, there are fewer than
    two positives or two negatives, or a score is not finite.
    """
    positive = _binary_vector(truth, "truth")
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("scores_a and scores_b must be one-dimensional")
    if not positive.size == a.size == b.size:
        raise ValueError(
            f"truth, scores_a and scores_b differ in length ({positive.size}, {a.size}, {b.size})"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores_a and scores_b must be finite (no NaN or infinity)")
    m = int(np.count_nonzero(positive))
    n = positive.size - m
    if m == 0 or n == 0:
        raise ValueError(f"truth holds one class only ({m} positives, {n} negatives): the AUC is undefined")
    if m < 2 or n < 2:
        raise ValueError(
            "DeLong's variance needs at least 2 positives and 2 negatives; "
            f"got {m} positive(s) and {n} negative(s)"
        )
    aucs, covariance = _delong_covariance(positive, np.vstack((a, b)))
    difference = float(aucs[0] - aucs[1])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2.0 * covariance[0, 1])
    statistic: float | None
    if difference == 0.0:
        statistic, p_value = 0.0, 1.0
    elif variance <= 0.0:
        statistic, p_value = None, 0.0
    else:
        statistic = difference / math.sqrt(variance)
        p_value = math.erfc(abs(statistic) / math.sqrt(2.0))
    detail = {
        "auc_a": float(aucs[0]),
        "auc_b": float(aucs[1]),
        "difference": difference,
        "se": math.sqrt(max(variance, 0.0)),
    }
    return PairedTest(name="DeLong", statistic=statistic, p_value=p_value, detail=detail)
