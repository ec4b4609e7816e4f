"""[0, 1] scaling with constants fitted on the training split only.

The spectrogram rows (dB) and the tonnetz rows (natural range [-1, 1]) are separate blocks with their own
constants: the ``scale_percentile``-th and ``(100 - scale_percentile)``-th percentiles of that block's
training values map to 0 and 1, and values outside are clipped. Percentiles rather than min/max, so one
extreme clip does not squeeze every other clip into a narrow band.
"""

from __future__ import annotations

import numpy as np

from advaudio.errors import DataError

MAX_PERCENTILE_SAMPLES = 1 << 24  # values used to estimate a percentile; larger blocks are strided


def fit_scaling(*, features: np.ndarray, spectrogram_rows: int, percentile: float) -> dict[str, float]:
    """Scaling constants from (training) features of shape (N, 1, H', W).

    Returns
    -------
    dict
        ``lo``, ``hi`` for rows ``[0, spectrogram_rows)``; when H' > spectrogram_rows also ``tonnetz_lo``,
        ``tonnetz_hi`` for the rows below, and always ``spectrogram_rows``.

    Raises
    ------
    DataError
        If the features are empty, not finite, or a block is constant (nothing to scale).
    """
    if features.shape[0] == 0:
        raise DataError("the training split is empty; cannot fit the [0, 1] scaling constants")
    scaling: dict[str, float] = {"spectrogram_rows": spectrogram_rows}
    blocks = {"": (0, spectrogram_rows)}
    if features.shape[2] > spectrogram_rows:
        blocks["tonnetz_"] = (spectrogram_rows, features.shape[2])
    for prefix, (start, stop) in blocks.items():
        values = _sample(features[:, :, start:stop, :])
        if not np.all(np.isfinite(values)):
            raise DataError("training features hold NaN or inf; cannot fit the scaling constants")
        lo, hi = np.percentile(values, [percentile, 100.0 - percentile])
        if not hi > lo:
            raise DataError(f"training features of rows [{start}, {stop}) are constant ({lo}); cannot scale")
        scaling[prefix + "lo"] = float(lo)
        scaling[prefix + "hi"] = float(hi)
    return scaling


def apply_scaling(*, features: np.ndarray, scaling: dict[str, float], chunk: int = 256) -> None:
    """Scale (N, 1, H', W) features to [0, 1] in place (works on a writable memmap), chunk by chunk."""
    rows = int(scaling["spectrogram_rows"])
    blocks = [(0, rows, scaling["lo"], scaling["hi"])]
    if "tonnetz_lo" in scaling:
        blocks.append((rows, features.shape[2], scaling["tonnetz_lo"], scaling["tonnetz_hi"]))
    for begin in range(0, features.shape[0], chunk):
        part = features[begin : begin + chunk]
        for start, stop, lo, hi in blocks:
            block = part[:, :, start:stop, :]
            np.clip((block - lo) / (hi - lo), 0.0, 1.0, out=block)


def _sample(block: np.ndarray) -> np.ndarray:
    """All values of ``block``, or an evenly strided subset when there are too many (deterministic)."""
    n_per_item = int(np.prod(block.shape[1:]))
    step = max(1, (block.shape[0] * n_per_item) // MAX_PERCENTILE_SAMPLES)
    return np.asarray(block[::step], dtype=np.float64).ravel()
