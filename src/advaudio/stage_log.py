"""How a stage reports: one summary line ``<stage>: <n> <unit> in <s> s (<rate> <unit>/s), peak RSS <m> MiB`` (and
the peak CUDA memory the stage allocated, when it used CUDA), and one line ``<stage>: <message>`` with exit
code 2, never a traceback, when it refuses bad parameters or bad data (:func:`run_stage`)."""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, NoReturn

from advaudio.errors import ConfigError, DataError

#: Exit code of a stage that refused its parameters or its input data.
REFUSED = 2


def run_stage(stage: str, main: Callable[[], int]) -> NoReturn:
    """Run a stage script's ``main`` and exit with the code it returns.

    A :class:`~advaudio.errors.ConfigError` or :class:`~advaudio.errors.DataError` (a user's bad value or
    file; the message names the key or file, what was found and what was expected) ends the stage with the
    single line ``<stage>: <message>`` on stderr and exit code :data:`REFUSED`, without a traceback. Any
    other exception is a bug and keeps its traceback.

    Examples
    --------
    >>> if __name__ == "__main__":  # doctest: +SKIP
    ...     run_stage("train", main)
    """
    try:
        code = main()
    except (ConfigError, DataError) as exc:
        sys.stdout.flush()
        print(f"{stage}: {one_line(str(exc))}", file=sys.stderr, flush=True)
        code = REFUSED
    sys.exit(code)


def one_line(message: str) -> str:
    """``message`` with its lines joined by ``" | "`` (e.g. a YAML parser's report of where a file is bad)."""
    return " | ".join(line.strip() for line in message.splitlines() if line.strip())


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
