"""Perturbation sizes, fooling rates, robustness curves and AUC (docs/PROTOCOL.md "Curves and AUC")."""

from __future__ import annotations

import numpy as np

from advaudio.evaluation.ball import within_bound
from advaudio.evaluation.stats import bootstrap_interval, wilson_interval


def l2_norms(*, x: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """Per-sample ||adv - x||_2 over all but the first axis."""
    return np.linalg.norm((adv - x).reshape(len(x), -1).astype(np.float64), axis=1)


def rms(*, l2: np.ndarray, n_elements: int) -> np.ndarray:
    """Per-element RMS of a perturbation: ||delta||_2 / sqrt(d)."""
    return np.asarray(l2, dtype=np.float64) / np.sqrt(n_elements)


def db_ratio(*, l2: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Perturbation-to-signal ratio in dB: 20 log10(||delta||_2 / ||x||_2) (-inf for delta = 0)."""
    signal = np.linalg.norm(x.reshape(len(x), -1).astype(np.float64), axis=1)
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(np.asarray(l2, dtype=np.float64) / np.maximum(signal, 1e-12))


def fooling_rate(success: np.ndarray) -> float:
    """Share of victims fooled; 0 for no victims."""
    success = np.asarray(success, dtype=bool)
    return float(success.mean()) if success.size else 0.0


def robustness_curve(*, l2: np.ndarray, success: np.ndarray, epsilons: np.ndarray) -> np.ndarray:
    """FR(eps): share of victims with a verified adversarial of ||delta||_2 <= eps, per eps."""
    l2 = np.where(np.asarray(success, dtype=bool), np.asarray(l2, dtype=np.float64), np.inf)
    if l2.size == 0:
        return np.zeros(len(epsilons))
    return (l2[None, :] <= np.asarray(epsilons, dtype=np.float64)[:, None]).mean(axis=1)


def fr_at_bound(*, l2: np.ndarray, success: np.ndarray, bound: float) -> float:
    """Share of victims with a verified adversarial within the bound (:func:`~advaudio.evaluation.ball.within_bound`)."""
    ok = np.asarray(success, dtype=bool) & within_bound(np.asarray(l2, dtype=np.float64), bound)
    return float(ok.mean()) if ok.size else 0.0


def curve_auc(*, epsilons: np.ndarray, fooling_rates: np.ndarray) -> float:
    """Area under FR(eps) over [0, eps_max] divided by eps_max (trapezoid rule); in [0, 1].

    Raises
    ------
    ValueError
        If the grid does not start at 0 or is not increasing.
    """
    eps = np.asarray(epsilons, dtype=np.float64)
    fr = np.asarray(fooling_rates, dtype=np.float64)
    if eps.size < 2 or eps[0] != 0.0 or np.any(np.diff(eps) <= 0):
        raise ValueError(f"curve grid must start at 0 and increase, got {eps[:3]}...")
    return float(np.sum((fr[1:] + fr[:-1]) * np.diff(eps)) / 2.0 / eps[-1])


def epsilon_grid(*, end: float, points: int) -> np.ndarray:
    """The curve grid of one comparison: ``points`` values from 0 to ``end``.

    The end is fixed by the parameters (docs/PROTOCOL.md "Curves and AUC"), never by the perturbations
    found, so one attack's AUC does not depend on the others and the original and retrained models are
    measured on the same grid.

    Raises
    ------
    ValueError
        If ``end`` is not positive or ``points`` < 2.
    """
    if not end > 0 or points < 2:
        raise ValueError(f"curve grid end = {end!r}, points = {points!r}; expected end > 0 and points >= 2")
    return np.linspace(0.0, float(end), points)


def curve_end(*, bounded: bool, bound_l2: float, curve_max: float, bound: float) -> float:
    """End of the curve grid: the L2 bound for the bounded comparison (``original_bounded`` vs ``retrained_bounded``),
    ``attack.curve_max`` for the unbounded one (``original`` vs ``retrained``), scaled to the input size the
    same way as the bound (``curve_max * bound_l2 / bound``)."""
    return float(bound_l2) if bounded else float(curve_max) * float(bound_l2) / float(bound)


def attack_summary(
    *,
    x: np.ndarray,
    l2: np.ndarray,
    success: np.ndarray,
    epsilons: np.ndarray,
    bound: float,
    seed: int = 0,
) -> dict[str, float]:
    """The per-attack numbers of ``metrics/attack_<mode>.json`` that depend only on the results.

    Means and medians are over successful victims; keys with no value (no success) are omitted. Each rate
    carries a 95 % Wilson interval (``<key>_ci_low``, ``<key>_ci_high``) and ``mean_l2`` a 95 % percentile
    bootstrap interval over the successful victims (docs/PROTOCOL.md "Uncertainty").
    """
    success = np.asarray(success, dtype=bool)
    l2 = np.asarray(l2, dtype=np.float64)
    n = len(success)
    fr_curve = robustness_curve(l2=l2, success=success, epsilons=epsilons)
    at_bound = fr_at_bound(l2=l2, success=success, bound=bound)
    out: dict[str, float] = {"fooling_rate": fooling_rate(success), "fr_at_bound": at_bound,
                             "auc": curve_auc(epsilons=epsilons, fooling_rates=fr_curve)}
    for key, k in (("fooling_rate", int(success.sum())), ("fr_at_bound", int(round(at_bound * n)))):
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = wilson_interval(k, n)
    if success.any():
        good = l2[success]
        d = int(np.prod(x.shape[1:]))
        db = db_ratio(l2=good, x=x[success])
        out["mean_l2"] = float(good.mean())
        boot = bootstrap_interval(lambda idx: float(good[idx].mean()), len(good), seed=seed)
        out["mean_l2_ci_low"], out["mean_l2_ci_high"] = boot.low, boot.high
        out["median_l2"] = float(np.median(good))
        out["mean_rms"] = float(rms(l2=good, n_elements=d).mean())
        if np.all(np.isfinite(db)):
            out["mean_db"] = float(db.mean())
    return out


def curve_csv(curve: np.ndarray) -> str:
    """A robustness curve ``(P, 2)`` of (epsilon, fooling rate) as the CSV the attack stages write
    (``epsilon,fooling_rate``, 6 significant digits), which ``dvc plots`` and the report read."""
    lines = ["epsilon,fooling_rate", *(f"{e:.6g},{f:.6g}" for e, f in curve)]
    return "\n".join(lines) + "\n"
