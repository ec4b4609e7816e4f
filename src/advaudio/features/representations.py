"""REPRESENTATIONS: clip -> native 2D log-domain blocks (rows = frequency ascending, columns = time).

A representation is one or two blocks, each computed and stored at its native resolution:

- ``spectrogram``: STFT power (``1 + n_fft // 2`` bins x frames) or complex-Morlet wavelet power
  (``dwt_scales`` x frames at ``dwt_sample_rate``), in dB (fixed reference, floored ``config.top_db`` below
  the clip's peak);
- ``tonnetz`` (``*_tonnetz`` only): librosa's 6 tonal-centroid rows in their natural [-1, 1].

Scaling to [0, 1] (:mod:`advaudio.features.scaling`, constants from the training split) happens before
storage; the resize to the model's input size happens when a batch is read (:mod:`advaudio.features.reader`):
the spectrogram block to ``(height, width)``, the tonnetz block to ``(tonnetz_height, width)`` below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import librosa
import numpy as np

from advaudio.config import SpectrogramConfig
from advaudio.features.stft import power_db, stft_power
from advaudio.features.tonnetz import TONNETZ_HOP_LENGTH, TONNETZ_ROWS, TONNETZ_SAMPLE_RATE, tonnetz
from advaudio.features.wavelet import cached_filter_bank, n_wavelet_frames
from advaudio.registry import Registry

SPECTROGRAM, TONNETZ = "spectrogram", "tonnetz"


def resampled_length(*, n_samples: int, orig_sr: int, target_sr: int) -> int:
    """Length of a clip of ``n_samples`` after ``librosa.resample`` from ``orig_sr`` to ``target_sr``."""
    if orig_sr == target_sr:
        return n_samples
    return int(np.ceil(n_samples * (float(target_sr) / orig_sr)))  # librosa's own expression


def stft_db(*, y: np.ndarray, sample_rate: int, dwt_sample_rate: int, config: SpectrogramConfig) -> np.ndarray:
    """STFT power in dB, (1 + n_fft // 2, frames); row k is ``k * sample_rate / n_fft`` Hz."""
    power = stft_power(y=y, n_fft=config.n_fft, hop_length=config.hop_length)
    return power_db(power=power, top_db=config.top_db)


def stft_shape(*, n_samples: int, sample_rate: int, dwt_sample_rate: int, config: SpectrogramConfig) -> tuple[int, int]:
    """Shape of :func:`stft_db` for clips of ``n_samples`` (centred frames)."""
    return 1 + config.n_fft // 2, 1 + n_samples // config.hop_length


def wavelet_db(*, y: np.ndarray, sample_rate: int, dwt_sample_rate: int, config: SpectrogramConfig) -> np.ndarray:
    """Complex-Morlet frame power in dB at ``dwt_sample_rate``, (dwt_scales, frames)."""
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


def wavelet_shape(*, n_samples: int, sample_rate: int, dwt_sample_rate: int,
                  config: SpectrogramConfig) -> tuple[int, int]:
    """Shape of :func:`wavelet_db` for clips of ``n_samples`` at ``sample_rate``."""
    n = resampled_length(n_samples=n_samples, orig_sr=sample_rate, target_sr=dwt_sample_rate)
    return config.dwt_scales, n_wavelet_frames(n_samples=n, hop_length=config.dwt_hop_length)


def tonnetz_shape(*, n_samples: int, sample_rate: int) -> tuple[int, int]:
    """Shape of :func:`~advaudio.features.tonnetz.tonnetz` for clips of ``n_samples`` at ``sample_rate``."""
    n = resampled_length(n_samples=n_samples, orig_sr=sample_rate, target_sr=TONNETZ_SAMPLE_RATE)
    return TONNETZ_ROWS, 1 + n // TONNETZ_HOP_LENGTH


@dataclass(frozen=True)
class Representation:
    """One registered representation: its spectrogram block and whether a tonnetz block follows.

    ``spectrogram`` computes the block, ``spectrogram_shape`` predicts its shape from the clip length.
    """

    spectrogram: Callable[..., np.ndarray]
    spectrogram_shape: Callable[..., tuple[int, int]]
    with_tonnetz: bool

    @property
    def blocks(self) -> tuple[str, ...]:
        """Block names, top to bottom in the model input."""
        return (SPECTROGRAM, TONNETZ) if self.with_tonnetz else (SPECTROGRAM,)

    def compute(self, block: str, *, y: np.ndarray, sample_rate: int, dwt_sample_rate: int,
                config: SpectrogramConfig) -> np.ndarray:
        """Block ``block`` of clip ``y`` at its native resolution, float32 (rows, frames), unscaled."""
        if block == SPECTROGRAM:
            out = self.spectrogram(y=y, sample_rate=sample_rate, dwt_sample_rate=dwt_sample_rate, config=config)
        elif block == TONNETZ and self.with_tonnetz:
            out = tonnetz(y=y, sample_rate=sample_rate)
        else:
            raise ValueError(f"no block {block!r}; this representation has {list(self.blocks)}")
        return np.asarray(out, dtype=np.float32)

    def native_shapes(self, *, n_samples: int, sample_rate: int, dwt_sample_rate: int,
                      config: SpectrogramConfig) -> dict[str, tuple[int, int]]:
        """Native (rows, frames) of every block for clips of ``n_samples`` at ``sample_rate``."""
        shapes = {SPECTROGRAM: self.spectrogram_shape(n_samples=n_samples, sample_rate=sample_rate,
                                                      dwt_sample_rate=dwt_sample_rate, config=config)}
        if self.with_tonnetz:
            shapes[TONNETZ] = tonnetz_shape(n_samples=n_samples, sample_rate=sample_rate)
        return shapes


REPRESENTATIONS: Registry[Representation] = Registry("representation")
REPRESENTATIONS.register("stft")(Representation(spectrogram=stft_db, spectrogram_shape=stft_shape, with_tonnetz=False))
REPRESENTATIONS.register("dwt")(Representation(spectrogram=wavelet_db, spectrogram_shape=wavelet_shape,
                                               with_tonnetz=False))
REPRESENTATIONS.register("stft_tonnetz")(Representation(spectrogram=stft_db, spectrogram_shape=stft_shape,
                                                        with_tonnetz=True))
REPRESENTATIONS.register("dwt_tonnetz")(Representation(spectrogram=wavelet_db, spectrogram_shape=wavelet_shape,
                                                       with_tonnetz=True))


def target_shapes(*, name: str, config: SpectrogramConfig) -> dict[str, tuple[int, int]]:
    """(rows, columns) each block of ``name`` is resized to in the model input, top to bottom."""
    shapes = {SPECTROGRAM: (config.height, config.width)}
    if REPRESENTATIONS.get(name).with_tonnetz:
        shapes[TONNETZ] = (config.tonnetz_height, config.width)
    return shapes


def n_rows(*, name: str, config: SpectrogramConfig) -> int:
    """H' of representation ``name``: spectrogram rows plus tonnetz rows for ``*_tonnetz``."""
    return sum(h for h, _ in target_shapes(name=name, config=config).values())


def stored_bytes_per_clip(*, name: str, config: SpectrogramConfig, n_samples: int, sample_rate: int,
                          dwt_sample_rate: int, itemsize: int = 2) -> int:
    """Bytes one clip of ``n_samples`` takes in the features folder (all blocks, ``itemsize`` per value)."""
    shapes = REPRESENTATIONS.get(name).native_shapes(n_samples=n_samples, sample_rate=sample_rate,
                                                     dwt_sample_rate=dwt_sample_rate, config=config)
    return itemsize * sum(math.prod(s) for s in shapes.values())
