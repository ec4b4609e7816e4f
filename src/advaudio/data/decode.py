"""Decode a dataset's listed clips in order, handing each to a writer, skipping bad files only when asked to.

Only regular files are opened: a FIFO would block the read forever, a device would never end. Each decoded
clip is hashed, so the same audio listed under two names (two clip ids, two sources) is caught before it
can sit on both sides of a split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from advaudio.data.datasets import Clip
from advaudio.data.listing import regular_file_problem
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


def _content_hash(y: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(y).tobytes(), digest_size=16).digest()


def decode_clips(
    *,
    clips: Sequence[Clip],
    sample_rate: int,
    n_samples: int,
    skip_bad_files: bool,
    write: Callable[[np.ndarray], None],
    pool: Any,
) -> tuple[list[int], list[SkippedFile]]:
    """Decode ``clips`` in order, calling ``write`` with each clip kept.

    Parameters
    ----------
    clips : sequence of Clip
        The listing; each ``path`` is read with :func:`~advaudio.data.wav.load_wav`.
    sample_rate, n_samples : int
        Target rate and clip length.
    skip_bad_files : bool
        False: the first bad file raises. True: bad files are skipped and returned.
    write : callable
        Called with each kept clip, float32 ``(n_samples,)``, in order (e.g.
        :meth:`~advaudio.data.clip_shards.ClipWriter.append`); the k-th call gets the k-th kept clip.
    pool : object with ``imap``
        From :func:`advaudio.parallel.worker_pool`.

    Returns
    -------
    kept : list of int
        Indices into ``clips`` of the decoded clips, in row order.
    skipped : list of SkippedFile
        Bad files, and later copies of audio already decoded under another name.

    Raises
    ------
    DataError
        A missing, non-regular, unreadable, truncated, empty, silent, beyond-full-scale or non-finite file,
        or the same decoded audio under two names, unless ``skip_bad_files``.
    """
    unreadable = {i: why for i, c in enumerate(clips) if (why := regular_file_problem(c.path))}
    if unreadable and not skip_bad_files:
        raise DataError(
            f"{next(iter(unreadable.values()))} ({len(unreadable)} listed file(s) missing or not regular in "
            f"all; set -S audio.skip_bad_files=true to skip and report them)"
        )
    readable = [i for i in range(len(clips)) if i not in unreadable]
    tasks = ((clips[i].path, sample_rate, n_samples) for i in readable)
    kept: list[int] = []
    skipped = [SkippedFile(path=clips[i].path, reason=why) for i, why in unreadable.items()]
    first_with: dict[bytes, int] = {}
    results = pool.imap(_decode_one, tasks, chunksize=8)
    for i, (y, error) in zip(readable, tqdm(results, total=len(readable), desc="decode", unit="clip")):
        if y is not None:
            j = first_with.setdefault(_content_hash(y), i)
            if j != i:
                y, error = None, _same_audio(clips[j], clips[i])
        if y is None:
            if not skip_bad_files:
                raise DataError(f"{error} (set -S audio.skip_bad_files=true to skip and report bad files)")
            skipped.append(SkippedFile(path=clips[i].path, reason=error))
            continue
        write(y)
        kept.append(i)
    return kept, skipped


def _same_audio(first: Clip, again: Clip) -> str:
    return (
        f"{again.path}: the same audio as {first.path} (line {again.line} and line {first.line} of the "
        f"metadata; sources {again.source_id!r} and {first.source_id!r}); one recording listed twice would "
        "be counted twice or leak across the split"
    )
