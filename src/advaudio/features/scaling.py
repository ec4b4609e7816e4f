"""[0, 1] scaling with constants fitted on the training split only, block by block, at native resolution.

The spectrogram block (dB) and the tonnetz block (natural range [-1, 1]) have their own constants: the
``scale_percentile``-th and ``(100 - scale_percentile)``-th percentiles of that block's native training
values map to 0 and 1, and values outside are clipped. Percentiles rather than min/max, so one extreme clip
does not squeeze every other clip into a narrow band. The constants go into ``meta.json`` as ``lo``/``hi``
(spectrogram) and ``tonnetz_lo``/``tonnetz_hi``.
"""

from __future__ import annotations

import numpy as np

from advaudio.errors import DataError

MAX_PERCENTILE_SAMPLES = 1 << 24  # values used to estimate a percentile; more clips are strided
KEY_PREFIX = {"spectrogram": "", "tonnetz": "tonnetz_"}  # block -> prefix of its keys in the scaling dict


def sample_step(*, n_clips: int, values_per_clip: int) -> int:
    """Stride over training clips for the percentile estimate: every ``step``-th clip (0, step, 2 step, ...)
    contributes all its values, so at most about :data:`MAX_PERCENTILE_SAMPLES` values are used."""
    return max(1, (n_clips * values_per_clip) // MAX_PERCENTILE_SAMPLES)


def fit_block(*, values: np.ndarray, percentile: float, block: str) -> tuple[float, float]:
    """``(lo, hi)``: the ``percentile``-th and ``(100 - percentile)``-th percentiles of ``values``.

    Raises
    ------
    DataError
        If ``values`` is empty, holds NaN or inf, or is constant (nothing to scale); names ``block``.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise DataError(f"the training split is empty; cannot fit the [0, 1] scaling of the {block} block")
    if not np.all(np.isfinite(values)):
        raise DataError(f"training {block} features hold NaN or inf; cannot fit the scaling constants")
    lo, hi = np.percentile(values, [percentile, 100.0 - percentile])
    if not hi > lo:
        raise DataError(f"training {block} features are constant ({lo}); cannot scale")
    return float(lo), float(hi)


def scale_block(*, values: np.ndarray, lo: float, hi: float, dtype: type = np.float16) -> np.ndarray:
    """``clip((values - lo) / (hi - lo), 0, 1)`` computed in float32, returned as ``dtype``."""
    out = (np.asarray(values, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    np.clip(out, 0.0, 1.0, out=out)
    return out.astype(dtype)
