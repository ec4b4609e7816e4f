"""Decode a dataset's listed clips into rows of one array, skipping bad files only when asked to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from advaudio.data.datasets import Clip
from advaudio.data.wav import load_wav
from advaudio.errors import DataError


@dataclass(frozen=True)
class SkippedFile:
    """A listed file that could not be used, and why."""

    path: Path
    reason: str


def _decode_one(task: tuple[Path, int, int]) -> tuple[np.ndarray | None, str]:
    path, sample_rate, n_samples = task
    try:
        return load_wav(path, sample_rate=sample_rate, n_samples=n_samples), ""
    except DataError as exc:
        return None, str(exc)


def decode_clips(
    *,
    clips: Sequence[Clip],
    sample_rate: int,
    n_samples: int,
    skip_bad_files: bool,
    out: np.ndarray,
    pool: Any,
) -> tuple[list[int], list[SkippedFile]]:
    """Decode ``clips`` in order into consecutive rows of ``out``.

    Parameters
    ----------
    clips : sequence of Clip
        The listing; each ``path`` is read with :func:`~advaudio.data.wav.load_wav`.
    sample_rate, n_samples : int
        Target rate and clip length.
    skip_bad_files : bool
        False: the first bad file raises. True: bad files are skipped and returned.
    out : np.ndarray
        ``(>= len(clips), n_samples)`` float32 array (may be a memmap); row k holds the k-th kept clip.
    pool : object with ``imap``
        From :func:`advaudio.parallel.worker_pool`.

    Returns
    -------
    kept : list of int
        Indices into ``clips`` of the decoded clips, in row order.
    skipped : list of SkippedFile

    Raises
    ------
    DataError
        A missing, unreadable, empty, silent or non-finite file, unless ``skip_bad_files``.
    """
    missing = [c.path for c in clips if not c.path.is_file()]
    if missing and not skip_bad_files:
        raise DataError(
            f"{missing[0]}: listed audio file not found ({len(missing)} missing in all; "
            f"set -S audio.skip_bad_files=true to skip and report them)"
        )
    tasks = ((c.path, sample_rate, n_samples) for c in clips)
    kept: list[int] = []
    skipped: list[SkippedFile] = []
    results = pool.imap(_decode_one, tasks, chunksize=8)
    for i, (y, error) in enumerate(tqdm(results, total=len(clips), desc="decode", unit="clip")):
        if y is None:
            if not skip_bad_files:
                raise DataError(f"{error} (set -S audio.skip_bad_files=true to skip and report bad files)")
            skipped.append(SkippedFile(path=clips[i].path, reason=error))
            continue
        out[len(kept)] = y
        kept.append(i)
    return kept, skipped
