"""Short-time Fourier power spectrogram (librosa), the study's ``stft`` representation."""

from __future__ import annotations

import librosa
import numpy as np


def stft_power(*, y: np.ndarray, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Power ``|STFT|^2`` with librosa's defaults (Hann window, centred frames).

    Returns
    -------
    np.ndarray
        (1 + n_fft // 2, n_frames) float64; row 0 is 0 Hz, row k is ``k * sample_rate / n_fft`` Hz.
    """
    return np.abs(librosa.stft(y.astype(np.float64), n_fft=n_fft, hop_length=hop_length)) ** 2


def power_db(*, power: np.ndarray, top_db: float) -> np.ndarray:
    """Power to dB with a fixed reference (1.0), floored ``top_db`` below the clip's peak.

    A fixed reference, unlike ``ref=np.max``, keeps each clip's absolute level: a quiet and a loud
    recording of one sound stay different, and the train-split scaling constants mean the same on
    every clip. Only the floor depends on the clip's peak.
    """
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=top_db)
