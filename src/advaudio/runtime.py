"""Process-level speed settings for the heavy stages (train, attacks, retraining).

Measured on 2-core CPU machines: tcmalloc speeds up CPU training 1.2-3.5x, so heavy stages re-execute
themselves once with it preloaded when the system has it (Debian: ``libtcmalloc-minimal4``).
Set ``ADVAUDIO_NO_TCMALLOC=1`` to opt out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TCMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)


def find_tcmalloc() -> str | None:
    """Path of the system's tcmalloc shared library, or None when it is not installed."""
    for candidate in TCMALLOC_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return None


def reexec_with_tcmalloc() -> None:
    """Re-execute the current Python program with tcmalloc in ``LD_PRELOAD`` (at most once).

    Does nothing when tcmalloc is missing, already preloaded, or ``ADVAUDIO_NO_TCMALLOC`` is set.
    """
    lib = find_tcmalloc()
    preload = os.environ.get("LD_PRELOAD", "")
    if lib is None or "tcmalloc" in preload or os.environ.get("ADVAUDIO_NO_TCMALLOC"):
        return
    env = dict(os.environ, LD_PRELOAD=f"{lib} {preload}".strip())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
