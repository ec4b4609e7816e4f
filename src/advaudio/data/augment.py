"""Pitch-shift augmentation of training clips (the study's scales 0.75, 0.9, 1.15, 1.5).

A scale ``s`` is a frequency ratio: every component moves from f to s*f, i.e. ``12*log2(s)`` semitones,
at unchanged duration (:func:`librosa.effects.pitch_shift`: phase-vocoder stretch, then resampling).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Sequence

import librosa
import numpy as np
from tqdm import tqdm

from advaudio.errors import DataError

READ_ROWS = 16  # source rows read at a time (one ordinary read per run of consecutive rows)


def semitones(*, scale: float) -> float:
    """Semitones of a frequency ratio: ``12*log2(scale)``."""
    if scale <= 0:
        raise ValueError(f"pitch scale must be positive, got {scale}")
    return 12.0 * math.log2(scale)


def pitch_shift(*, y: np.ndarray, sample_rate: int, scale: float) -> np.ndarray:
    """Shift every frequency of ``y`` by the ratio ``scale``; same length, float32.

    Raises
    ------
    DataError
        If the result is not finite (it never should be for finite input).
    """
    if scale == 1.0:
        return y.astype(np.float32, copy=True)
    shifted = librosa.effects.pitch_shift(
        y.astype(np.float32), sr=sample_rate, n_steps=semitones(scale=scale)
    )
    if not np.all(np.isfinite(shifted)):
        raise DataError(f"pitch shift by {scale} produced non-finite samples")
    return shifted.astype(np.float32)


def _shift_task(task: tuple[np.ndarray, int, float]) -> np.ndarray:
    y, sample_rate, scale = task
    return pitch_shift(y=y, sample_rate=sample_rate, scale=scale)


def augment_rows(
    *,
    read: Callable[[Sequence[int]], np.ndarray],
    rows: Sequence[int],
    scales: Sequence[float],
    sample_rate: int,
    pool: Any,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Pitch-shift the clips ``rows`` at every scale, in order (scale-major, then row).

    Parameters
    ----------
    read : callable
        ``read(indices)`` -> float32 ``(len(indices), L)``: the clips of those rows (e.g.
        :meth:`~advaudio.data.clip_shards.ClipWriter.rows`, or ``audio.__getitem__`` of an array). It is called
        for :data:`READ_ROWS` rows at a time, as the pool asks for work (from the pool's task-feeding thread).
    rows : sequence of int
        The training-pool rows to augment; test rows must not be passed.
    scales : sequence of float
        Frequency ratios; 1.0 is skipped (it is the original).
    pool : object with ``imap``
        From :func:`advaudio.parallel.worker_pool`.

    Yields
    ------
    (row, scale, shifted)
        The source row, the scale and the shifted clip, float32 ``(L,)``.
    """
    jobs = [(r, s) for s in scales if s != 1.0 for r in rows]

    def tasks() -> Iterator[tuple[np.ndarray, int, float]]:
        for start in range(0, len(jobs), READ_ROWS):
            block = jobs[start : start + READ_ROWS]
            audio = read([r for r, _ in block])
            for (_, s), y in zip(block, audio):
                yield y, sample_rate, s

    results = pool.imap(_shift_task, tasks(), chunksize=4)
    for (r, s), shifted in zip(jobs, tqdm(results, total=len(jobs), desc="pitch shift", unit="clip", disable=None)):
        yield r, s, shifted
