"""The feature workers: :func:`advaudio.parallel.worker_pool` with librosa's filter cache switched on."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

from advaudio.parallel import worker_pool


@contextmanager
def feature_pool(*, workers: int) -> Iterator[Any]:
    """Yield an object with an ordered ``imap(func, iterable, chunksize)``.

    ``workers > 1``: a pool of one-thread processes with librosa's filter cache (``LIBROSA_CACHE_DIR``,
    level 10: the CQT filters behind tonnetz) in a temporary folder removed afterwards.
    ``workers == 1``: maps in this process.
    """
    if workers < 1:
        raise ValueError(f"spectrogram.workers must be >= 1, got {workers}")
    with tempfile.TemporaryDirectory(prefix="advaudio-librosa-cache-") as cache_dir:
        env = {"LIBROSA_CACHE_DIR": cache_dir, "LIBROSA_CACHE_LEVEL": "10"}
        with worker_pool(workers=workers, env=env) as pool:
            yield pool
