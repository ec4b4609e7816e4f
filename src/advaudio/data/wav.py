"""Decode real-world WAV files into fixed-length mono float32 clips at one sample rate.

soundfile (libsndfile) reads every WAV flavour in the wild: PCM 8/16/24/32-bit, float 32/64 and
WAVE_FORMAT_EXTENSIBLE headers, with any channel count. Channels are averaged, the signal is resampled with
soxr (through :func:`librosa.resample`) and then zero-padded at the end or trimmed to the target length.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from advaudio.errors import DataError

# A clip whose peak stays below this (about -120 dBFS, under one 24-bit step) carries no signal.
SILENCE_PEAK = 1e-6
RESAMPLE_TYPE = "soxr_hq"


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as it is stored: float64 ``(frames, channels)`` in [-1, 1] and its sample rate.

    Raises
    ------
    DataError
        If the file is missing or libsndfile cannot decode it; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file not found")
    try:
        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.SoundFileError, OSError) as exc:
        raise DataError(f"{path}: not a readable audio file ({exc})") from None
    return audio, int(rate)


def to_mono(*, audio: np.ndarray) -> np.ndarray:
    """Average the channels of ``(frames, channels)`` audio into ``(frames,)``."""
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def fix_length(*, y: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad at the end or trim the end so that ``y`` holds exactly ``n_samples`` samples."""
    if y.shape[0] >= n_samples:
        return y[:n_samples]
    return np.pad(y, (0, n_samples - y.shape[0]))


def check_audio(*, y: np.ndarray, path: str | Path) -> None:
    """Refuse audio that no representation can use.

    Raises
    ------
    DataError
        For zero-length, NaN/inf or all-silent audio; the message names ``path``.
    """
    if y.size == 0:
        raise DataError(f"{path}: audio has zero length")
    if not np.all(np.isfinite(y)):
        raise DataError(f"{path}: audio holds NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak < SILENCE_PEAK:
        raise DataError(f"{path}: audio is silent (peak {peak:.3g} < {SILENCE_PEAK:g})")


def load_wav(path: str | Path, *, sample_rate: int, n_samples: int) -> np.ndarray:
    """Decode one WAV file into a mono float32 clip of fixed length at ``sample_rate``.

    Parameters
    ----------
    path : str or Path
        Any WAV file libsndfile reads (PCM_U8/16/24/32, FLOAT, DOUBLE, WAVE_FORMAT_EXTENSIBLE).
    sample_rate : int
        Target rate in Hz; other rates are resampled with soxr.
    n_samples : int
        Output length; shorter clips are zero-padded at the end, longer ones trimmed.

    Returns
    -------
    np.ndarray
        float32, shape ``(n_samples,)``.

    Raises
    ------
    DataError
        Missing or undecodable file, zero-length, all-silent, NaN or inf audio; the message names the file.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    audio, rate = read_wav(path)
    y = to_mono(audio=audio)
    check_audio(y=y, path=path)
    if rate != sample_rate:
        y = librosa.resample(y, orig_sr=rate, target_sr=sample_rate, res_type=RESAMPLE_TYPE)
    y = fix_length(y=y, n_samples=n_samples).astype(np.float32)
    check_audio(y=y, path=path)
    return y
