"""One summary line per stage: ``<stage>: <n> <unit> in <s> s (<rate> <unit>/s), peak RSS <m> MiB`` (and the
peak CUDA memory the stage allocated, when it used CUDA)."""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from typing import Iterator


class StageCounter:
    """Mutable item count, filled in by the stage while it runs."""

    def __init__(self) -> None:
        self.items = 0


@contextmanager
def stage_summary(stage: str, unit: str = "items") -> Iterator[StageCounter]:
    """Time a stage and print its summary line when it finishes.

    Examples
    --------
    >>> with stage_summary("augment", "clips") as counter:  # doctest: +SKIP
    ...     counter.items = process()
    """
    counter = StageCounter()
    start = time.perf_counter()
    yield counter
    seconds = time.perf_counter() - start
    rate = counter.items / seconds if seconds > 0 else float("inf")
    print(f"{stage}: {counter.items} {unit} in {seconds:.1f} s ({rate:.1f} {unit}/s), {peak_memory()}", flush=True)


def peak_memory() -> str:
    """``"peak RSS <m> MiB"`` of this process, plus ``", peak CUDA <m> MiB"`` when torch has used CUDA."""
    text = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    torch = sys.modules.get("torch")  # never import torch just to ask
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        text += f", peak CUDA {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    return text
