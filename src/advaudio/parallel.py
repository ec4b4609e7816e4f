"""A process pool started once, one BLAS/OpenMP/torch thread per worker (or a serial map for 1 worker).

Used by the CPU-bound audio stages (augment, spectrogram). ``spawn`` workers are safe whatever the parent
imported; callers' scripts need an ``if __name__ == "__main__":`` guard. Inside a grid task the pool never has more
workers than the task's cores (``ADVAUDIO_CPUS``, set by :mod:`advaudio.grid.cell_run`); the outputs do not depend
on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Mapping

# Read when a worker imports numpy/scipy/numba/torch; spawned workers inherit the parent's environ.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
CPUS_VARIABLE = "ADVAUDIO_CPUS"  # the cores a grid task was given: the most workers a pool starts


def allowed_workers(workers: int) -> int:
    """``workers``, capped at ``ADVAUDIO_CPUS`` when that is set to a positive integer."""
    cap = os.environ.get(CPUS_VARIABLE, "")
    return min(workers, int(cap)) if cap.isdigit() and int(cap) > 0 else workers


class SerialMap:
    """The in-process stand-in for a pool: ``imap`` is the builtin ``map``."""

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        return map(func, iterable)


def _init_worker() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    torch.set_num_threads(1)


@contextmanager
def worker_pool(*, workers: int, env: Mapping[str, str] | None = None) -> Iterator[Any]:
    """Yield an object with an ordered ``imap(func, iterable, chunksize)``.

    Parameters
    ----------
    workers : int
        ``> 1`` starts a ``spawn`` pool of that many one-thread processes (at most ``ADVAUDIO_CPUS``); ``1`` maps
        in this process.
    env : mapping, optional
        Extra environment variables the workers start with (e.g. librosa's cache settings).

    Raises
    ------
    ValueError
        If ``workers < 1``.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    workers = allowed_workers(workers)
    if workers == 1:
        yield SerialMap()
        return
    worker_env = {k: "1" for k in _THREAD_VARS}
    worker_env.update(env or {})
    saved = {k: os.environ.get(k) for k in worker_env}
    os.environ.update(worker_env)
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
