"""Known answers for the intervals and paired tests of advaudio.evaluation.stats."""

import math

import numpy as np
import pytest

from advaudio.evaluation.stats import (
    bootstrap_interval,
    bootstrap_p_value,
    mcnemar_p,
    significant,
    wilcoxon_p,
    wilson_interval,
)

Z95 = 1.959963984540054


def wilson_closed_form(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def mean_of(x: np.ndarray):
    return lambda idx: float(np.mean(x[idx]))


# --- Wilson ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 20, 33, 40])
def test_wilson_matches_closed_form(k):
    np.testing.assert_allclose(wilson_interval(k, 40), wilson_closed_form(k, 40), rtol=0, atol=1e-12)


def test_wilson_known_values_and_bounds():
    low, high = wilson_interval(0, 40)
    assert low == 0.0 and 0.08 < high < 0.09  # 0.0876...
    low, high = wilson_interval(20, 40)
    assert low < 0.5 < high and math.isclose(low + high, 1.0)
    low99, high99 = wilson_interval(20, 40, confidence=0.99)
    assert low99 < low and high99 > high


def test_wilson_no_trials():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n", "name"), [(-1, 10, "successes"), (11, 10, "successes"), (0, -1, "n")])
def test_wilson_rejects_counts(k, n, name):
    with pytest.raises(ValueError, match=name):
        wilson_interval(k, n)


def test_wilson_rejects_confidence():
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


# --- bootstrap interval ---------------------------------------------------------------------------------


def test_bootstrap_interval_of_mean_contains_mean():
    x = np.random.default_rng(0).normal(loc=3.0, scale=1.0, size=100)
    res = bootstrap_interval(mean_of(x), len(x), seed=1)
    assert res.estimate == pytest.approx(x.mean())
    assert res.low < x.mean() < res.high
    # close to the normal-theory interval mean +- 1.96 * s / sqrt(n)
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert res.high - res.low == pytest.approx(2 * Z95 * se, rel=0.15)
    assert res.distribution.shape == (2000,)


def test_bootstrap_interval_shrinks_as_one_over_sqrt_n():
    x = np.random.default_rng(0).normal(size=50)
    x4 = np.tile(x, 4)  # the same spread at 4n: the width should halve
    small = bootstrap_interval(mean_of(x), len(x), seed=2)
    large = bootstrap_interval(mean_of(x4), len(x4), seed=2)
    assert (large.high - large.low) / (small.high - small.low) == pytest.approx(0.5, abs=0.1)


def test_bootstrap_interval_is_seeded():
    x = np.random.default_rng(0).normal(size=30)
    a = bootstrap_interval(mean_of(x), len(x), seed=7, n_resamples=500)
    b = bootstrap_interval(mean_of(x), len(x), seed=7, n_resamples=500)
    c = bootstrap_interval(mean_of(x), len(x), seed=8, n_resamples=500)
    assert (a.low, a.high) == (b.low, b.high)
    np.testing.assert_array_equal(a.distribution, b.distribution)
    assert (a.low, a.high) != (c.low, c.high)


def test_bootstrap_interval_is_paired():
    # the statistic sees indices, so a[idx] - b[idx] stays paired: a constant difference has no spread
    a = np.random.default_rng(0).normal(size=40)
    res = bootstrap_interval(lambda idx: float(np.mean(a[idx] - (a[idx] - 1.0))), 40, seed=0, n_resamples=200)
    assert res.low == res.high == res.estimate == pytest.approx(1.0)


def test_bootstrap_interval_confidence_widens():
    x = np.random.default_rng(0).normal(size=60)
    r90 = bootstrap_interval(mean_of(x), 60, seed=3, confidence=0.90)
    r99 = bootstrap_interval(mean_of(x), 60, seed=3, confidence=0.99)
    assert r99.low < r90.low and r99.high > r90.high


@pytest.mark.parametrize("n", [0, 1])
def test_bootstrap_interval_too_few_units(n):
    res = bootstrap_interval(lambda idx: float(len(idx)), n, seed=0)
    assert res.low == res.high == res.estimate == float(n)
    assert res.distribution.size == 0


def test_bootstrap_interval_constant_statistic():
    res = bootstrap_interval(lambda idx: 3.0, 10, seed=0, n_resamples=100)
    assert res.low == res.high == res.estimate == 3.0
    assert not np.isnan([res.low, res.high]).any()


def test_bootstrap_interval_drops_nan_resamples():
    # a ratio over victims with few "pairs": resamples without any give NaN
    num = np.arange(20, dtype=float)
    den = np.zeros(20)
    den[[3, 11]] = 1.0

    def ratio(idx):
        d = den[idx].sum()
        return float(num[idx].sum() / d) if d else float("nan")

    res = bootstrap_interval(ratio, 20, seed=0, n_resamples=1000)
    assert not np.isnan(res.distribution).any()
    assert 0 < res.distribution.size < 1000
    assert np.isfinite([res.low, res.high]).all() and res.low < res.high


def test_bootstrap_interval_all_nan_resamples():
    # NaN on every resample that repeats a unit: with n = 2 the two distinct resamples give a constant 1.0
    res = bootstrap_interval(lambda idx: 1.0 if len(set(idx)) == len(idx) else float("nan"), 2, seed=0)
    assert res.low == res.high == res.estimate == 1.0


def test_bootstrap_result_is_frozen():
    res = bootstrap_interval(mean_of(np.arange(5.0)), 5, seed=0, n_resamples=50)
    with pytest.raises(AttributeError):
        res.low = 0.0
    with pytest.raises(ValueError):
        res.distribution[0] = 0.0


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"n": -1}, "n"), ({"n_resamples": 0}, "n_resamples"), ({"confidence": 0.0}, "confidence")]
)
def test_bootstrap_interval_rejects(kwargs, name):
    args = {"n": 5, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        bootstrap_interval(lambda idx: 0.0, args.pop("n"), **args)


# --- bootstrap p-value ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("null", "p"), [(0.0, 0.0), (200.0, 0.0), (10.0, 0.2), (100.0, 0.02), (1.0, 0.02), (50.5, 1.0), (50.0, 1.0)]
)
def test_bootstrap_p_value_known(null, p):
    distribution = np.arange(1.0, 101.0)  # 1..100
    assert bootstrap_p_value(distribution, null) == pytest.approx(p)


def test_bootstrap_p_value_ignores_nan_and_empty():
    assert bootstrap_p_value(np.array([np.nan, 1.0, 2.0, 3.0, 4.0]), 1.0) == pytest.approx(0.5)
    assert bootstrap_p_value(np.array([]), 0.0) == 1.0
    with pytest.raises(ValueError, match="null"):
        bootstrap_p_value(np.arange(3.0), float("nan"))


# --- McNemar --------------------------------------------------------------------------------------------


def test_mcnemar_exact_known_answers():
    concordant = np.array([True, True, False, False])
    # 0 vs 6 discordant pairs: 2 * 0.5**6
    a = np.concatenate([concordant, np.zeros(6, bool)])
    b = np.concatenate([concordant, np.ones(6, bool)])
    assert mcnemar_p(a, b) == pytest.approx(2 * 0.5**6) == pytest.approx(0.03125)
    assert mcnemar_p(b, a) == pytest.approx(0.03125)
    # 3 vs 3: no evidence
    a = np.concatenate([concordant, [True] * 3, [False] * 3])
    b = np.concatenate([concordant, [False] * 3, [True] * 3])
    assert mcnemar_p(a, b) == pytest.approx(1.0)
    # 1 vs 5: 2 * P(X <= 1), X ~ Bin(6, 1/2) = 2 * 7 / 64
    a = np.array([True] + [False] * 5)
    assert mcnemar_p(a, ~a) == pytest.approx(14 / 64)


def test_mcnemar_no_discordant_pairs():
    a = np.array([True, False, True])
    assert mcnemar_p(a, a.copy()) == 1.0
    assert mcnemar_p(np.array([], bool), np.array([], bool)) == 1.0


def test_mcnemar_rejects():
    with pytest.raises(ValueError, match="shape"):
        mcnemar_p(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="a must"):
        mcnemar_p(np.array([0.5, 1.0]), np.array([1, 0]))


# --- Wilcoxon -------------------------------------------------------------------------------------------


def test_wilcoxon_clear_shift_is_significant():
    rng = np.random.default_rng(0)
    a = rng.normal(size=30)
    b = a + 1.0 + 0.1 * rng.normal(size=30)
    assert wilcoxon_p(a, b) < 0.05
    assert wilcoxon_p(b, a) < 0.05


def test_wilcoxon_symmetric_no_shift_is_large():
    b = np.zeros(10)
    a = np.array([-5.0, -4, -3, -2, -1, 1, 2, 3, 4, 5])
    assert wilcoxon_p(a, b) > 0.5


def test_wilcoxon_degenerate():
    assert wilcoxon_p(np.array([]), np.array([])) == 1.0
    for n in (5, 60):  # above 50 pairs scipy's normal approximation gives NaN for all-zero differences
        x = np.arange(float(n))
        assert wilcoxon_p(x, x.copy()) == 1.0


def test_wilcoxon_rejects():
    with pytest.raises(ValueError, match="shape"):
        wilcoxon_p(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        wilcoxon_p(np.array([1.0, np.nan]), np.array([0.0, 0.0]))


# --- significant ----------------------------------------------------------------------------------------


def test_significant():
    assert significant(0.01)
    assert not significant(0.05)
    assert not significant(0.2)
    assert significant(0.2, level=0.25)
    with pytest.raises(ValueError, match="level"):
        significant(0.01, level=0.0)
    with pytest.raises(ValueError, match="p must"):
        significant(1.5)
    with pytest.raises(ValueError, match="p must"):
        significant(float("nan"))
