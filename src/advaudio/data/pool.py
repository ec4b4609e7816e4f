"""A process pool started once, one BLAS/OpenMP thread per worker (or a plain serial map for 1 worker)."""

from __future__ import annotations

import multiprocessing
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

# Read by numpy/scipy/numba/soxr when a worker imports them; spawned workers inherit the parent's environ.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class SerialMap:
    """The in-process stand-in for a pool: ``imap`` is the builtin ``map``."""

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        return map(func, iterable)


def _init_worker() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


@contextmanager
def worker_pool(*, workers: int) -> Iterator[Any]:
    """Yield an object with an ordered ``imap(func, iterable, chunksize)``.

    ``workers > 1`` starts a ``spawn`` process pool once (safe whatever the parent imported) whose workers
    each use one thread; ``workers == 1`` maps in this process.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        yield SerialMap()
        return
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
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
