"""One summary line per stage: ``<stage>: <n> <unit> in <s> s (<rate> <unit>/s)``."""

from __future__ import annotations

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
    print(f"{stage}: {counter.items} {unit} in {seconds:.1f} s ({rate:.1f} {unit}/s)", flush=True)
