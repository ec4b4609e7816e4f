"""REPRESENTATIONS: clip -> 2D log-domain array (rows = frequency ascending, columns = time).

Every entry has the signature ``f(*, y, sample_rate, dwt_sample_rate, config) -> (H', W)`` float32 with
``H' = config.height`` (spectrogram) or ``config.height + config.tonnetz_height`` (spectrogram rows, then
tonnetz rows below them). Spectrogram rows are in dB (fixed reference, floored ``config.top_db`` below the
clip's peak); tonnetz rows keep their natural [-1, 1] values. Scaling to [0, 1] happens later
(:mod:`advaudio.features.scaling`) with constants from the training split.
"""

from __future__ import annotations

from typing import Callable

import librosa
import numpy as np

from advaudio.config import SpectrogramConfig
from advaudio.features.resize import resize
from advaudio.features.stft import power_db, stft_power
from advaudio.features.tonnetz import tonnetz
from advaudio.features.wavelet import cached_filter_bank
from advaudio.registry import Registry

Representation = Callable[..., np.ndarray]
REPRESENTATIONS: Registry[Representation] = Registry("representation")


def n_rows(*, name: str, config: SpectrogramConfig) -> int:
    """H' of representation ``name``: spectrogram rows plus tonnetz rows for ``*_tonnetz``."""
    REPRESENTATIONS.get(name)
    return config.height + (config.tonnetz_height if name.endswith("_tonnetz") else 0)


def stft_db(*, y: np.ndarray, config: SpectrogramConfig) -> np.ndarray:
    """STFT power in dB, (1 + n_fft // 2, frames), before resizing."""
    power = stft_power(y=y, n_fft=config.n_fft, hop_length=config.hop_length)
    return power_db(power=power, top_db=config.top_db)


def wavelet_db(*, y: np.ndarray, sample_rate: int, dwt_sample_rate: int, config: SpectrogramConfig) -> np.ndarray:
    """Complex-Morlet frame power in dB at ``dwt_sample_rate``, (dwt_scales, frames), before resizing."""
    if sample_rate != dwt_sample_rate:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=dwt_sample_rate)
    bank = cached_filter_bank(
        n_samples=len(y),
        sample_rate=dwt_sample_rate,
        n_scales=config.dwt_scales,
        fmin=config.dwt_fmin,
        cycles=config.dwt_cycles,
        hop_length=config.dwt_hop_length,
    )
    return power_db(power=bank(y), top_db=config.top_db)


def _with_tonnetz(*, image: np.ndarray, y: np.ndarray, sample_rate: int, config: SpectrogramConfig) -> np.ndarray:
    tonal = resize(image=tonnetz(y=y, sample_rate=sample_rate), height=config.tonnetz_height, width=config.width)
    return np.concatenate([image, tonal], axis=0)


@REPRESENTATIONS.register("stft")
def stft(*, y: np.ndarray, sample_rate: int, dwt_sample_rate: int, config: SpectrogramConfig) -> np.ndarray:
    """STFT power in dB resized to (height, width)."""
    return resize(image=stft_db(y=y, config=config), height=config.height, width=config.width)


@REPRESENTATIONS.register("dwt")
def dwt(*, y: np.ndarray, sample_rate: int, dwt_sample_rate: int, config: SpectrogramConfig) -> np.ndarray:
    """Complex-Morlet wavelet power in dB (log-spaced scales) resized to (height, width)."""
    image = wavelet_db(y=y, sample_rate=sample_rate, dwt_sample_rate=dwt_sample_rate, config=config)
    return resize(image=image, height=config.height, width=config.width)


@REPRESENTATIONS.register("stft_tonnetz")
def stft_tonnetz(*, y: np.ndarray, sample_rate: int, dwt_sample_rate: int, config: SpectrogramConfig) -> np.ndarray:
    """``stft`` with tonnetz (tonnetz_height rows) appended below."""
    image = stft(y=y, sample_rate=sample_rate, dwt_sample_rate=dwt_sample_rate, config=config)
    return _with_tonnetz(image=image, y=y, sample_rate=sample_rate, config=config)


@REPRESENTATIONS.register("dwt_tonnetz")
def dwt_tonnetz(*, y: np.ndarray, sample_rate: int, dwt_sample_rate: int, config: SpectrogramConfig) -> np.ndarray:
    """``dwt`` with tonnetz (tonnetz_height rows) appended below."""
    image = dwt(y=y, sample_rate=sample_rate, dwt_sample_rate=dwt_sample_rate, config=config)
    return _with_tonnetz(image=image, y=y, sample_rate=sample_rate, config=config)
