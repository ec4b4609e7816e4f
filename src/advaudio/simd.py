"""Hold numpy to its compiled baseline SIMD level, so the audio stages write the same bytes on every x86-64 CPU.

numpy picks, at import, the fastest kernels this CPU runs (AVX2/FMA, AVX-512) for exp, log, sin, cos and
others, and those round differently in the last bits. Measured on an AVX-512 machine with numpy 2.4: the
pitch shift of one clip (librosa's phase vocoder) gave three different byte strings with every kernel enabled,
with AVX-512 disabled and with AVX2/FMA disabled too; so two machines with different vector units wrote
different ``build/audio`` from identical ``build/synth``, and training amplified the difference. Disabling every
dispatch target (``NPY_DISABLE_CPU_FEATURES``; numpy reads it once, at import) leaves the baseline kernels every
x86-64 CPU that numpy supports runs. libsoxr (the resampler) already takes its SSE path on every x86-64 CPU;
glibc's libm, which numpy's baseline kernels call for some functions, may still pick FMA variants
(docs/PROTOCOL.md "Same bytes on another machine").
"""

from __future__ import annotations

import os
import subprocess
import sys

VARIABLE = "NPY_DISABLE_CPU_FEATURES"
_LIST_TARGETS = """\
try:
    from numpy._core import _multiarray_umath as m
except ImportError:
    from numpy.core import _multiarray_umath as m
print(" ".join(m.__cpu_dispatch__))
"""


def dispatch_targets() -> list[str]:
    """numpy's dispatch targets above its baseline (``__cpu_dispatch__``), read in a child process because this
    process must not import numpy before :func:`pin_numpy_to_baseline`."""
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    out = subprocess.run([sys.executable, "-c", _LIST_TARGETS], env=env, text=True, capture_output=True, check=True)
    return out.stdout.split()


def pin_numpy_to_baseline() -> None:
    """Disable every numpy dispatch target for this process and the processes it starts.

    Raises
    ------
    RuntimeError
        If numpy is already imported (the setting would silently not apply).
    """
    if "numpy" in sys.modules:
        raise RuntimeError("pin_numpy_to_baseline() must run before numpy is imported")
    os.environ[VARIABLE] = " ".join(dispatch_targets())
