"""Uncertainty for the reported numbers: 95 % intervals and paired tests.

Every rate and accuracy advaudio reports carries a 95 % interval:

- :func:`wilson_interval` for rates of the form k/n (fooling rates, accuracies): the Wilson score interval.
- :func:`bootstrap_interval` for means and ratios over victims (mean ||delta||_2, dB ratios, ratios of
  rates): a percentile bootstrap that resamples victims, so every quantity computed from one victim stays
  paired within a resample. :func:`bootstrap_p_value` turns its distribution into an approximate p-value.

Comparisons of the original and the FGSM-retrained model on the same victims use paired tests:

- :func:`mcnemar_p` (exact McNemar) for per-victim success (fooled or not);
- :func:`wilcoxon_p` (Wilcoxon signed-rank) for paired per-victim values such as ||delta||_2;
- :func:`significant` for the decision at a given level.

The definitions are documented in docs/PROTOCOL.md, section "Uncertainty".
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

# scipy >= 1.15 seeds bootstrap with ``rng``; older versions only take ``random_state``.
_SEED_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """A percentile-bootstrap interval.

    Attributes
    ----------
    low, high : float
        Bounds of the interval; both equal ``estimate`` in the degenerate cases.
    distribution : numpy.ndarray
        Bootstrap distribution of the statistic, NaN values dropped (empty when ``n < 2``). Read-only.
    estimate : float
        The statistic on all units, ``statistic(np.arange(n))``.
    """

    low: float
    high: float
    distribution: np.ndarray
    estimate: float


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _check_paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got a {a.shape} and b {b.shape}")
    return a.ravel(), b.ravel()


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for the rate ``successes / n``.

    Parameters
    ----------
    successes : int
        Number of successes, in ``[0, n]``.
    n : int
        Number of trials (victims, test examples); ``n >= 0``.
    confidence : float, optional
        Confidence level in (0, 1).

    Returns
    -------
    tuple of float
        ``(low, high)`` within [0, 1]; ``(0.0, 1.0)`` for ``n = 0``.

    Raises
    ------
    ValueError
        If ``n`` is negative, ``successes`` is outside ``[0, n]`` or ``confidence`` is outside (0, 1).
    """
    _check_confidence(confidence)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n] = [0, {n}], got {successes}")
    if n == 0:
        return 0.0, 1.0
    low, high = proportion_confint(successes, n, alpha=1.0 - confidence, method="wilson")
    # Clip rounding error (e.g. -1e-17 for 0 successes).
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


def _bootstrap_distribution(
    statistic: Callable[[np.ndarray], float], n: int, *, seed: int, n_resamples: int
) -> np.ndarray:
    """Values of ``statistic`` on ``n_resamples`` resamples of ``range(n)``, NaN values dropped."""
    with warnings.catch_warnings():
        # The interval scipy computes is not used (it turns NaN with NaN values), so neither is its warning.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            (np.arange(n),),
            statistic,
            n_resamples=n_resamples,
            vectorized=False,
            method="percentile",
            **{_SEED_KEYWORD: np.random.default_rng(seed)},
        )
    values = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    return values[~np.isnan(values)]


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    seed: int,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Paired percentile-bootstrap interval of a statistic over ``n`` units (victims).

    Each resample draws ``n`` indices from ``range(n)`` with replacement and evaluates
    ``statistic(indices)``, so the statistic indexes all its per-victim arrays with the same indices and
    paired quantities stay paired.

    Parameters
    ----------
    statistic : callable
        Maps an integer index array to a float. It may return NaN for a resample (e.g. one without the
        pairs a ratio needs); those values are dropped before the percentiles.
    n : int
        Number of units, ``n >= 0``.
    seed : int
        Seed of the resampling; the same seed gives the same result.
    n_resamples : int, optional
        Number of bootstrap resamples, ``>= 1``.
    confidence : float, optional
        Confidence level in (0, 1).

    Returns
    -------
    BootstrapResult
        ``low = high = estimate`` when ``n < 2``, when every resample gives NaN, or when the bootstrap
        distribution is constant.

    Raises
    ------
    ValueError
        If ``n`` is negative, ``n_resamples < 1`` or ``confidence`` is outside (0, 1).
    """
    _check_confidence(confidence)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    estimate = float(statistic(np.arange(n)))
    distribution = np.empty(0) if n < 2 else _bootstrap_distribution(statistic, n, seed=seed, n_resamples=n_resamples)
    distribution.setflags(write=False)
    if distribution.size == 0 or np.ptp(distribution) == 0:
        return BootstrapResult(low=estimate, high=estimate, distribution=distribution, estimate=estimate)
    alpha = (1.0 - confidence) / 2.0
    # The same quantiles (linear interpolation) as scipy's percentile method, on the NaN-free distribution.
    low, high = np.quantile(distribution, [alpha, 1.0 - alpha])
    return BootstrapResult(low=float(low), high=float(high), distribution=distribution, estimate=estimate)


def bootstrap_p_value(distribution: np.ndarray, null: float) -> float:
    """Approximate two-sided p-value of a null value from a percentile-bootstrap distribution.

    ``2 * min(share of values <= null, share of values >= null)``, capped at 1. This is the duality with
    the percentile interval (the null lies outside the ``1 - alpha`` interval roughly when p < alpha), not an
    exact test; its resolution is ``1 / len(distribution)``.

    Parameters
    ----------
    distribution : numpy.ndarray
        Bootstrap distribution (e.g. ``BootstrapResult.distribution``); NaN values are ignored.
    null : float
        Value of the statistic under the null hypothesis (e.g. 0 for a difference, 1 for a ratio).

    Returns
    -------
    float
        p-value in [0, 1]; 1.0 for an empty distribution (no evidence against the null).

    Raises
    ------
    ValueError
        If ``null`` is NaN.
    """
    if np.isnan(null):
        raise ValueError("null must not be NaN")
    values = np.asarray(distribution, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return 1.0
    share = min(np.mean(values <= null), np.mean(values >= null))
    return float(min(1.0, 2.0 * share))


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact McNemar p-value for paired booleans.

    Typically ``a`` and ``b`` are per-victim attack success against the original and the retrained model.

    Parameters
    ----------
    a, b : numpy.ndarray
        Paired booleans (or 0/1 values) of the same shape.

    Returns
    -------
    float
        Two-sided exact p-value; 1.0 when there are no discordant pairs.

    Raises
    ------
    ValueError
        If the shapes differ or a value is not boolean (0/1).
    """
    a, b = _check_paired(a, b)
    for name, values in (("a", a), ("b", b)):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans (0/1)")
    a, b = a.astype(bool), b.astype(bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    table = [[int(np.sum(a & b)), only_a], [only_b, int(np.sum(~a & ~b))]]
    return float(mcnemar(table, exact=True).pvalue)


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value for paired values.

    Typically per-victim values (e.g. ||delta||_2) against the original and the retrained model. Zero
    differences are dropped (scipy's default ``zero_method="wilcox"``).

    Parameters
    ----------
    a, b : numpy.ndarray
        Paired values of the same shape.

    Returns
    -------
    float
        p-value; 1.0 when there are no pairs or all differences are zero.

    Raises
    ------
    ValueError
        If the shapes differ or a difference is NaN.
    """
    a, b = _check_paired(a, b)
    with np.errstate(invalid="ignore"):
        diff = a.astype(np.float64) - b.astype(np.float64)
    if np.isnan(diff).any():
        raise ValueError("a and b must not hold NaN (or the same infinity at one position)")
    if diff.size == 0 or not diff.any():
        return 1.0
    return float(stats.wilcoxon(a, b, alternative="two-sided").pvalue)


def significant(p: float, *, level: float = 0.05) -> bool:
    """Whether a p-value is significant: ``p < level``.

    Parameters
    ----------
    p : float
        p-value in [0, 1].
    level : float, optional
        Significance level in (0, 1).

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If ``p`` is outside [0, 1] (or NaN) or ``level`` outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return bool(p < level)
