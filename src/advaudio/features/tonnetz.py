"""Tonal centroid features (librosa tonnetz) at 22.05 kHz, the study's setting."""

from __future__ import annotations

import librosa
import numpy as np

TONNETZ_SAMPLE_RATE = 22050
TONNETZ_HOP_LENGTH = 512  # librosa's default chroma hop
TONNETZ_ROWS = 6


def tonnetz(*, y: np.ndarray, sample_rate: int) -> np.ndarray:
    """librosa's tonnetz with default settings except ``tuning=0``.

    Tuning is fixed at 0 instead of estimated per clip: estimation is the slowest step and, on
    environmental sounds, would partly undo the fractional-semitone pitch-shift augmentation.
    librosa caches its CQT filters when ``LIBROSA_CACHE_DIR`` is set (the feature workers set it).

    Returns
    -------
    np.ndarray
        (6, 1 + n // 512) in [-1, 1] for n samples at 22.05 kHz, frames every 512 samples.
    """
    if sample_rate != TONNETZ_SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=TONNETZ_SAMPLE_RATE)
    return librosa.feature.tonnetz(y=y.astype(np.float32), sr=TONNETZ_SAMPLE_RATE, tuning=0.0,
                                   hop_length=TONNETZ_HOP_LENGTH)
