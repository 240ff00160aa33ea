"""Paired significance tests: McNemar against scipy's exact binomial test, DeLong against its definition,
scikit-learn's AUC and pROC's published results on its aSAH data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy.stats import binomtest, norm
from sklearn.metrics import roc_auc_score

from strokemodels.benchmark.significance import PairedTest, _delong_covariance, delong, mcnemar

# ---------------------------------------------------------------------------------------------------------
# McNemar


def _correctness(
    b: int, c: int, both_right: int = 3, both_wrong: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled paired correctness vectors with b (A right, B wrong) and c (A wrong, B right) discordant."""
    a = np.repeat([1, 0, 1, 0], [b, c, both_right, both_wrong])
    other = np.repeat([0, 1, 1, 0], [b, c, both_right, both_wrong])
    order = np.random.default_rng(seed).permutation(a.size)
    return a[order], other[order]


def _scipy_p(b: int, c: int) -> float:
    return 1.0 if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)


_COUNT = st.integers(0, 100_000)
_COUNTS = st.one_of(
    st.tuples(_COUNT, _COUNT),  # mostly far apart: tiny p-values
    _COUNT.flatmap(lambda c: st.tuples(st.integers(max(0, c - 700), c + 700), st.just(c))),  # close: p ~ 1
    st.tuples(st.integers(0, 30), st.integers(0, 30)),  # small counts
)


@given(_COUNTS)
@example((0, 0))
@example((0, 1))
@example((1, 0))
@example((7, 7))
@example((0, 1075))  # 2 * 2**-1075 underflows: p = 0 in both
@example((100_000, 99_000))
def test_mcnemar_equals_scipys_exact_binomial_test(counts: tuple[int, int]) -> None:
    b, c = counts
    result = mcnemar(*_correctness(b, c, seed=b + c))
    assert result.name == "McNemar (exact)"
    assert result.detail == {"b": b, "c": c}
    assert result.statistic == min(b, c)
    assert result.p_value == pytest.approx(_scipy_p(b, c), rel=1e-9, abs=1e-300)
    assert 0.0 <= result.p_value <= 1.0


def test_mcnemar_by_hand() -> None:
    """b = 0, c = 6: p = 2 * (1/2)**6; b = 1, c = 9: p = 2 * (1 + 10) / 2**10."""
    assert mcnemar(*_correctness(0, 6)).p_value == pytest.approx(2 / 64, rel=1e-14)
    assert mcnemar(*_correctness(1, 9)).p_value == pytest.approx(22 / 1024, rel=1e-14)


def test_mcnemar_is_one_without_discordant_patients() -> None:
    assert mcnemar(*_correctness(0, 0, both_right=10, both_wrong=5)).p_value == 1.0
    assert mcnemar(np.array([], dtype=int), np.array([], dtype=int)).p_value == 1.0
    ones = np.ones(50, dtype=bool)
    result = mcnemar(ones, ones)
    assert (result.p_value, result.statistic, result.detail) == (1.0, 0.0, {"b": 0.0, "c": 0.0})


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=300))
def test_mcnemar_is_symmetric_in_the_two_models(pairs: list[tuple[bool, bool]]) -> None:
    a = np.array([p[0] for p in pairs], dtype=bool)
    b = np.array([p[1] for p in pairs], dtype=bool)
    forward, backward = mcnemar(a, b), mcnemar(b, a)
    assert forward.p_value == backward.p_value
    assert forward.statistic == backward.statistic
    assert (forward.detail["b"], forward.detail["c"]) == (backward.detail["c"], backward.detail["b"])


@pytest.mark.parametrize(
    ("b", "c"),
    [(1_500_000, 1_497_000), (3_000_000, 2_995_000), (2_000_000, 1_998_000), (2_500_000, 2_500_000)],
)
def test_mcnemar_works_for_millions_of_discordant_patients(b: int, c: int) -> None:
    result = mcnemar(*_correctness(b, c))
    assert result.p_value == pytest.approx(_scipy_p(b, c), rel=1e-9)


def test_mcnemar_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar(np.array([1, 0, 1]), np.array([1, 0]))
    with pytest.raises(ValueError, match="0/1"):
        mcnemar(np.array([1, 2]), np.array([1, 0]))
    with pytest.raises(ValueError, match="one-dimensional"):
        mcnemar(np.ones((2, 2)), np.ones((2, 2)))


# ---------------------------------------------------------------------------------------------------------
# DeLong


def _psi(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def _delong_by_definition(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their covariance from DeLong et al. (1988) written out with the m x n comparison matrix."""
    positives, negatives = scores[:, truth], scores[:, ~truth]
    m, n = positives.shape[1], negatives.shape[1]
    v10 = np.zeros((len(scores), m))
    v01 = np.zeros((len(scores), n))
    aucs = np.zeros(len(scores))
    for r in range(len(scores)):
        psi = np.array([[_psi(x, y) for y in negatives[r]] for x in positives[r]])
        v10[r], v01[r], aucs[r] = psi.mean(axis=1), psi.mean(axis=0), psi.mean()
    s10 = np.array(
        [[np.sum((v10[r] - aucs[r]) * (v10[s] - aucs[s])) / (m - 1) for s in range(2)] for r in range(2)]
    )
    s01 = np.array(
        [[np.sum((v01[r] - aucs[r]) * (v01[s] - aucs[s])) / (n - 1) for s in range(2)] for r in range(2)]
    )
    return aucs, s10 / m + s01 / n


def _patients(seed: int, m: int, n: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled truth (m positives, n negatives) and two correlated score rows with ties (``levels`` values
    each when levels > 0, continuous when 0)."""
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.repeat([True, False], [m, n]))
    shared = rng.normal(size=m + n) + truth
    a = shared + rng.normal(size=m + n)
    b = shared + rng.normal(size=m + n) + 0.5 * truth
    scores = np.vstack((a, b))
    if levels:
        scores = np.floor(levels * (scores - scores.min()) / (np.ptp(scores) + 1e-9))
    return truth, scores


@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(2, 25),
    n=st.integers(2, 25),
    levels=st.sampled_from([0, 2, 3, 5, 8]),
)
def test_delong_agrees_with_the_definition_and_scikit_learn(seed: int, m: int, n: int, levels: int) -> None:
    truth, scores = _patients(seed, m, n, levels)
    aucs, covariance = _delong_covariance(truth, scores)
    want_aucs, want_covariance = _delong_by_definition(truth, scores)
    assert aucs == pytest.approx(want_aucs, abs=1e-12)
    assert covariance == pytest.approx(want_covariance, abs=1e-9)

    result = delong(truth.astype(int), scores[0], scores[1])
    assert result.name == "DeLong"
    assert result.detail["auc_a"] == pytest.approx(roc_auc_score(truth, scores[0]), abs=1e-12)
    assert result.detail["auc_b"] == pytest.approx(roc_auc_score(truth, scores[1]), abs=1e-12)
    assert result.detail["difference"] == pytest.approx(want_aucs[0] - want_aucs[1], abs=1e-12)
    variance = want_covariance[0, 0] + want_covariance[1, 1] - 2 * want_covariance[0, 1]
    assert result.detail["se"] == pytest.approx(math.sqrt(max(variance, 0.0)), abs=1e-9)
    if result.detail["difference"] == 0:
        assert (result.statistic, result.p_value) == (0.0, 1.0)
    elif variance > 1e-12:
        z = (want_aucs[0] - want_aucs[1]) / math.sqrt(variance)
        assert result.statistic == pytest.approx(z, rel=1e-9)
        assert result.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9, abs=1e-15)


@given(
    seed=st.integers(0, 2**32 - 1), m=st.integers(2, 60), n=st.integers(2, 60), levels=st.sampled_from([0, 4])
)
def test_delong_swapping_the_models_negates_z_and_keeps_p(seed: int, m: int, n: int, levels: int) -> None:
    truth, scores = _patients(seed, m, n, levels)
    forward, backward = delong(truth, scores[0], scores[1]), delong(truth, scores[1], scores[0])
    assert backward.p_value == pytest.approx(forward.p_value, rel=1e-12, abs=1e-300)
    if forward.statistic is None:
        assert backward.statistic is None
    else:
        assert backward.statistic == pytest.approx(-forward.statistic, rel=1e-12, abs=1e-300)
    assert backward.detail["se"] == pytest.approx(forward.detail["se"], rel=1e-12, abs=1e-300)
    assert (backward.detail["auc_a"], backward.detail["auc_b"]) == (
        forward.detail["auc_b"],
        forward.detail["auc_a"],
    )


def test_delong_of_identical_scores_is_p_one() -> None:
    truth, scores = _patients(3, 40, 60, 0)
    result = delong(truth, scores[0], scores[0])
    assert (result.statistic, result.p_value, result.detail["difference"]) == (0.0, 1.0, 0.0)
    # A monotone transform ranks the patients identically: the same AUC, so no difference either.
    assert delong(truth, scores[0], np.exp(scores[0])).p_value == 1.0


def test_delong_finds_a_clearly_better_model_on_200_patients() -> None:
    rng = np.random.default_rng(20240601)
    truth = np.repeat([1, 0], [100, 100])
    good = 2.0 * truth + rng.normal(size=200)
    weak = 0.5 * truth + rng.normal(size=200)
    result = delong(truth, good, weak)
    assert result.detail["auc_a"] > 0.85 and result.detail["auc_b"] < 0.75
    assert result.statistic is not None and result.statistic > 0
    assert result.p_value < 0.01


def test_delong_with_a_zero_variance_difference_has_no_statistic() -> None:
    truth = np.array([1, 1, 1, 0, 0, 0])
    perfect = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    constant = np.full(6, 0.5)
    result = delong(truth, perfect, constant)
    assert result.statistic is None and result.p_value == 0.0
    assert result.detail == {"auc_a": 1.0, "auc_b": 0.5, "difference": 0.5, "se": 0.0}


# pROC's aSAH data (Robin et al., BMC Bioinformatics 2011;12:77; Turck et al., Intensive Care Med 2010;
# 36:107): 113 patients with aneurysmal subarachnoid haemorrhage, outcome Poor (1) or Good (0) at six months;
# wfns is the ordered factor's level (1-5), s100b and ndka the biomarkers. Expected values: pROC's own test
# suite (tests/testthat/test-roc.test.R, "roc.test statistic and p are as expected with defaults"), where
# r.<marker> = roc(aSAH$outcome, aSAH$<marker>), i.e. Poor are the cases and higher values mean Poor.
ASAH_POOR = (  # patient by patient
    "000011010010110010111010000000001001101100000000011000100"
    "01010011101101111000110100000010000000000001111110001000"
)
ASAH_WFNS = (  # patient by patient
    "111132541252551252252111121211342145414255112411255212512"
    "22151125214524414121421232421451154221113125225552445111"
)
ASAH_S100B = """
.13 .14 .10 .04 .13 .10 .47 .16 .18 .10 .12 .10 .44 .71 .04 .08 .49 .04 .07 .33 .09 .09 .07 .11 .07 .17
.07 .11 .13 .19 .05 .16 .41 .14 .34 .35 .48 .09 .96 .25 .50 .46 .16 .07 .43 .45 .11 .08 .09 .86 .52 .08
.06 .13 2.07 .10 .14 .15 .07 .06 .77 .05 .09 .30 .03 .09 .04 .23 .70 .09 .27 .71 .08 .26 .08 .16 .09 .13
.10 .08 .11 .33 .11 .28 .07 .10 .32 .22 .07 .05 .24 .38 .10 .15 .08 .14 .10 .07 .04 .19 .56 .14 .58 .32
.82 .74 .15 .47 .17 .44 .15 .50 .48
"""
ASAH_NDKA = """
3.01 8.54 8.09 10.42 17.4 12.75 6.0 13.2 15.54 6.01 15.96 17.86 5.18 8.9 13.41 20.75 11.6 16.11 32.37
54.82 32.41 49.94 40.34 9.47 6.29 12.53 6.54 6.3 80.3 12.8 9.8 9.81 9.85 18.21 5.03 14.04 21.93 8.02 7.42
8.38 6.59 9.63 13.12 7.96 14.34 41.43 7.63 7.06 12.59 13.56 3.87 9.44 7.66 12.98 419.19 27.19 22.27 9.95
21.22 11.73 10.4 58.83 6.39 11.09 12.22 13.67 17.21 22.63 12.9 9.7 21.57 8.23 72.57 15.54 10.51 10.6
14.57 5.19 9.63 4.61 21.48 17.3 12.71 9.44 11.07 19.46 10.83 5.37 11.97 7.75 9.83 10.55 28.49 8.53 12.57
12.9 46.83 11.68 12.67 9.01 9.57 34.06 11.72 14.26 47.61 11.67 24.58 10.33 13.87 15.89 22.43 6.79 13.45
"""
ASAH = {
    "poor": np.array([int(ch) for ch in ASAH_POOR]),
    "wfns": np.array([float(ch) for ch in ASAH_WFNS]),
    "s100b": np.array(ASAH_S100B.split(), dtype=float),
    "ndka": np.array(ASAH_NDKA.split(), dtype=float),
}
PROC_ROC_TEST = [  # roc.test(r.a, r.b): Z, p-value and the 95% confidence interval of auc_a - auc_b
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, (0.0104061769564846, 0.174214419249478)),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, (0.0634011709339876, 0.3600405634833566)),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, (-0.2876917446341914, 0.0488706064228094)),
]


def test_the_asah_data_is_intact() -> None:
    assert {len(column) for column in ASAH.values()} == {113}
    assert ASAH["poor"].sum() == 41
    # pROC's documented example: roc(aSAH$outcome, aSAH$s100b) prints "Area under the curve: 0.7314".
    assert round(roc_auc_score(ASAH["poor"], ASAH["s100b"]), 4) == 0.7314


@pytest.mark.parametrize(("a", "b", "z", "p", "interval"), PROC_ROC_TEST)
def test_delong_reproduces_procs_roc_test_on_asah(
    a: str, b: str, z: float, p: float, interval: tuple[float, float]
) -> None:
    result = delong(ASAH["poor"], ASAH[a], ASAH[b])
    assert result.statistic == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    low, high = interval
    assert result.detail["difference"] == pytest.approx((low + high) / 2, rel=1e-9)
    assert result.detail["se"] == pytest.approx((high - low) / (2 * norm.ppf(0.975)), rel=1e-9)
    assert result.detail["auc_a"] == pytest.approx(roc_auc_score(ASAH["poor"], ASAH[a]), abs=1e-12)


def test_delong_rejects_bad_input() -> None:
    scores = np.arange(6.0)
    with pytest.raises(ValueError, match="one class only"):
        delong(np.ones(6), scores, scores)
    with pytest.raises(ValueError, match="one class only"):
        delong(np.zeros(6, dtype=bool), scores, scores)
    with pytest.raises(ValueError, match="differ in length"):
        delong(np.array([1, 1, 0, 0, 0]), scores, scores)
    with pytest.raises(ValueError, match="differ in length"):
        delong(np.array([1, 1, 1, 0, 0, 0]), scores, scores[:5])
    with pytest.raises(ValueError, match="at least 2 positives and 2 negatives"):
        delong(np.array([1, 0, 0, 0, 0, 0]), scores, scores)
    with pytest.raises(ValueError, match="at least 2 positives and 2 negatives"):
        delong(np.array([1, 1, 1, 1, 1, 0]), scores, scores)
    with pytest.raises(ValueError, match="0/1"):
        delong(np.array([1, 2, 1, 0, 0, 0]), scores, scores)
    with pytest.raises(ValueError, match="finite"):
        delong(np.array([1, 1, 1, 0, 0, 0]), scores, np.array([0, 1, np.nan, 3, 4, 5]))


def test_the_result_is_frozen_and_strict() -> None:
    result = mcnemar(*_correctness(2, 5))
    assert isinstance(result, PairedTest)
    with pytest.raises(ValidationError):
        result.p_value = 0.5
    with pytest.raises(ValidationError):
        PairedTest(name="x", statistic=None, p_value=1.0, detail={}, extra=1)  # type: ignore[call-arg]
    assert PairedTest.model_validate_json(result.model_dump_json()) == result
