"""The feature workers: a spawn process pool started once, one thread per worker, librosa's cache on.

(The augment stage has a similar pool in ``advaudio.data.pool``; this one lives here so that the
spectrogram stage depends only on ``src/advaudio/features``.)
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

# Read when a worker imports numpy/scipy/numba/torch/librosa; spawned workers inherit the parent's environ.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class _SerialMap:
    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        return map(func, iterable)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


@contextmanager
def feature_pool(*, workers: int) -> Iterator[Any]:
    """Yield an object with an ordered ``imap(func, iterable, chunksize)``.

    ``workers > 1``: a ``spawn`` pool of that many one-thread processes, with librosa's filter cache
    (``LIBROSA_CACHE_DIR``, level 10: CQT filters for tonnetz) in a temporary folder removed afterwards.
    ``workers == 1``: maps in this process.
    """
    if workers < 1:
        raise ValueError(f"spectrogram.workers must be >= 1, got {workers}")
    if workers == 1:
        yield _SerialMap()
        return
    with tempfile.TemporaryDirectory(prefix="advaudio-librosa-cache-") as cache_dir:
        env = {k: "1" for k in _THREAD_VARS}
        env.update(LIBROSA_CACHE_DIR=cache_dir, LIBROSA_CACHE_LEVEL="10")
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            pool = multiprocessing.get_context("spawn").Pool(processes=workers, initializer=_init_worker)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:
            yield pool
        except BaseException:
            pool.terminate()
            raise
        pool.close()
        pool.join()
