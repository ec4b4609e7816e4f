"""Decode real-world WAV files into fixed-length mono float32 clips at one sample rate.

soundfile (libsndfile) reads every WAV flavour in the wild: PCM 8/16/24/32-bit, float 32/64 and
WAVE_FORMAT_EXTENSIBLE headers, with any channel count. Channels are averaged, the signal is resampled with
soxr (through :func:`librosa.resample`) and then zero-padded at the end or trimmed to the target length.

Audio that lies is refused, naming the file: a data chunk shorter than its header declares (libsndfile
quietly decodes what is there, and padding would turn the missing part into silence), float samples beyond
full scale, a sample rate no recording has, NaN/inf, zero length and silence.
"""

from __future__ import annotations

from pathlib import Path

import math
import struct

import librosa
import numpy as np
import soundfile as sf

from advaudio.errors import DataError

# A clip whose peak stays below this (about -120 dBFS, under one 24-bit step) carries no signal.
SILENCE_PEAK = 1e-6
RESAMPLE_TYPE = "soxr_hq"
# Float WAV is full scale at 1.0; a few dB of overshoot happens in honest files, 3e5 does not.
FLOAT_PEAK_LIMIT = 2.0
# Sample rates of real recordings; anything else is a corrupt header.
SAMPLE_RATE_RANGE = (1000, 768000)
# A data chunk may miss at most this much of what its header declares (a torn last frame).
TRUNCATION_TOLERANCE_S = 0.001
# Files are read whole up to this length (clips stay byte-identical to a whole read); of a longer file, listed by
# mistake, only this much is read, so an hour of audio costs no more memory than a minute.
MAX_READ_S = 60.0
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming writers leave the data size unset
# What libsndfile's header log says when a container's sizes exceed the file (it then decodes what is there).
_SIZE_DOUBTS = ("should be", "> file length", "does not match value", "not equal to frame count")


def declared_data_shortfall(path: str | Path) -> tuple[int, int, int, int] | None:
    """Compare a RIFF/RIFX WAV file's declared data-chunk size with the bytes present.

    Returns
    -------
    (declared, present, frame_bytes, rate) or None
        Byte counts of the ``data`` chunk, the bytes of one frame (channels x bytes per sample, from ``fmt``)
        and the rate; None for files that are not RIFF/RIFX WAVE (RF64, W64, other formats) or whose header
        leaves the size unset.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        frame_bytes = rate = 0
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            tag, length = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
            if tag == b"fmt " and length >= 16:
                fmt = fh.read(16)
                if len(fmt) < 16:
                    return None
                _, channels, rate, _, block_align, bits = struct.unpack(endian + "HHIIHH", fmt)
                # channels x bytes per sample, unless the header leaves them out; block_align may lie
                frame_bytes = channels * ((bits + 7) // 8) or block_align
                fh.seek(length - 16 + (length & 1), 1)
            elif tag == b"data":
                if length in _UNKNOWN_SIZES:
                    return None
                return length, max(0, size - fh.tell()), frame_bytes, rate
            else:
                fh.seek(length + (length & 1), 1)


def check_header(*, path: str | Path) -> None:
    """Refuse a file whose audio data holds less than its header declares.

    RIFF/RIFX WAVE files are checked exactly (:func:`declared_data_shortfall`); for other containers behind a
    ``.wav`` name (RF64, W64, AIFF, CAF, ...) libsndfile's own header log is read for the size mismatches it
    notes (``Chunk size ... > file length``, ``... (should be ...)``) but then decodes past.

    Raises
    ------
    DataError
        Naming the file and what the header and the data say.
    """
    found = declared_data_shortfall(path)
    if found is None:
        doubt = _libsndfile_size_doubt(path)
        if doubt:
            raise DataError(f"{path}: truncated or corrupt: its header and its data disagree (libsndfile: {doubt})")
        return
    declared, present, frame_bytes, rate = found
    if frame_bytes <= 0 or rate <= 0:
        return  # libsndfile judges a broken fmt chunk itself
    tolerance = max(frame_bytes, int(TRUNCATION_TOLERANCE_S * rate) * frame_bytes)
    if declared - present > tolerance:
        raise DataError(
            f"{path}: truncated: its header declares {declared / frame_bytes / rate:.3f} s of samples "
            f"({declared} bytes) but the file holds {present / frame_bytes / rate:.3f} s ({present} bytes)"
        )


def _libsndfile_size_doubt(path: str | Path) -> str:
    """The first line of libsndfile's header log that notes a size the file does not have ("" if none)."""
    if not _is_riff_wave(path):
        log = sf.info(str(path)).extra_info
        for line in log.splitlines():
            if any(mark in line for mark in _SIZE_DOUBTS):
                return " ".join(line.replace("***", "").split())
    return ""


def _is_riff_wave(path: str | Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE"


def read_wav(path: str | Path, *, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Read a WAV file as it is stored: float64 ``(frames, channels)`` and its sample rate.

    Parameters
    ----------
    path : str or Path
        The file.
    seconds : float, optional
        The length the caller needs: at most ``max(seconds, MAX_READ_S)`` is read, so that an hour-long file
        listed by mistake costs no more memory than a minute; None reads everything.

    Raises
    ------
    DataError
        If the file is missing, truncated (data shorter than its header declares), has an implausible sample
        rate, or libsndfile cannot decode it; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file not found")
    try:
        check_header(path=path)
        with sf.SoundFile(str(path)) as fh:
            rate = fh.samplerate
            lo, hi = SAMPLE_RATE_RANGE
            if not lo <= rate <= hi:
                raise DataError(f"{path}: sample rate {rate} Hz in its header; expected {lo}..{hi} Hz")
            frames = -1 if seconds is None else math.ceil(max(seconds, MAX_READ_S) * rate)
            audio = fh.read(frames=frames, dtype="float64", always_2d=True)
    except (sf.SoundFileError, OSError, struct.error) as exc:
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
        For zero-length, NaN/inf, beyond-full-scale or all-silent audio; the message names ``path``.
    """
    if y.size == 0:
        raise DataError(f"{path}: audio has zero length")
    if not np.all(np.isfinite(y)):
        raise DataError(f"{path}: audio holds NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak > FLOAT_PEAK_LIMIT:
        raise DataError(
            f"{path}: samples reach {peak:.6g}, beyond full scale; expected float audio within [-1, 1] "
            f"(at most {FLOAT_PEAK_LIMIT:g})"
        )
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
        Missing, truncated or undecodable file, an implausible sample rate, zero-length, all-silent, NaN, inf or
        beyond-full-scale audio; the message names the file.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    audio, rate = read_wav(path, seconds=n_samples / sample_rate)
    check_audio(y=audio, path=path)  # per channel: averaging could hide one channel's overshoot
    y = to_mono(audio=audio)
    check_audio(y=y, path=path)
    if rate != sample_rate:
        y = librosa.resample(y, orig_sr=rate, target_sr=sample_rate, res_type=RESAMPLE_TYPE)
    y = fix_length(y=y, n_samples=n_samples).astype(np.float32)
    check_audio(y=y, path=path)
    return y
