"""Perturbation sizes, fooling rates, robustness curves and AUC (PROTOCOL "Curves and AUC")."""

from __future__ import annotations

import numpy as np


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


def epsilon_grid(*, l2_arrays: list[np.ndarray], points: int, curve_max: float) -> np.ndarray:
    """The shared curve grid: ``points`` values from 0 to ``curve_max`` (0 = largest finite L2 seen)."""
    if curve_max <= 0:
        finite = [a[np.isfinite(a)] for a in l2_arrays]
        finite = np.concatenate(finite) if finite else np.zeros(0)
        curve_max = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return np.linspace(0.0, curve_max, points)


def attack_summary(
    *,
    x: np.ndarray,
    l2: np.ndarray,
    success: np.ndarray,
    epsilons: np.ndarray,
    bound: float,
) -> dict[str, float]:
    """The per-attack numbers of ``metrics/attack_<mode>.json`` that depend only on the results.

    Means and medians are over successful victims; keys with no value (no success) are omitted.
    """
    success = np.asarray(success, dtype=bool)
    fr_curve = robustness_curve(l2=l2, success=success, epsilons=epsilons)
    out: dict[str, float] = {
        "fooling_rate": fooling_rate(success),
        "fr_at_bound": float(robustness_curve(l2=l2, success=success, epsilons=np.array([bound]))[0]),
        "auc": curve_auc(epsilons=epsilons, fooling_rates=fr_curve),
    }
    if success.any():
        good = np.asarray(l2, dtype=np.float64)[success]
        d = int(np.prod(x.shape[1:]))
        db = db_ratio(l2=good, x=x[success])
        out["mean_l2"] = float(good.mean())
        out["median_l2"] = float(np.median(good))
        out["mean_rms"] = float(rms(l2=good, n_elements=d).mean())
        if np.all(np.isfinite(db)):
            out["mean_db"] = float(db.mean())
    return out
