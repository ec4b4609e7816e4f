"""The audio stages hold numpy to its baseline kernels (src/advaudio/simd.py): the setting reaches numpy, and the
pitch shift's bytes then no longer depend on the vector units this CPU has."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from advaudio.simd import dispatch_targets, pin_numpy_to_baseline

SRC = str(Path(__file__).resolve().parents[1] / "src")
_SHIFT = """\
import sys, hashlib
sys.path.insert(0, {src!r})
if {pin}:
    from advaudio.simd import pin_numpy_to_baseline
    pin_numpy_to_baseline()
import numpy as np
try:
    from numpy._core import _multiarray_umath as m
except ImportError:
    from numpy.core import _multiarray_umath as m
from advaudio.data.augment import pitch_shift
y = (np.random.default_rng(0).standard_normal(22050) * 0.1).astype(np.float32)
out = pitch_shift(y=y, sample_rate=22050, scale=0.75)
enabled = [t for t in m.__cpu_dispatch__ if m.__cpu_features__.get(t)]
print(hashlib.md5(out.tobytes()).hexdigest(), " ".join(enabled) or "-")
"""


def _shift(pin: bool, env_extra: dict[str, str] | None = None) -> tuple[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", _SHIFT.format(src=SRC, pin=pin)], env=env, text=True,
                         capture_output=True, check=True).stdout.split()
    return out[0], out[1]


def test_pinning_after_numpy_is_imported_is_refused():
    import numpy  # noqa: F401  (already imported by the test session; the point is that it is)

    with pytest.raises(RuntimeError, match="before numpy is imported"):
        pin_numpy_to_baseline()


def test_pinned_numpy_uses_no_dispatch_target_and_the_shift_is_the_same_whatever_was_set_before():
    digest, enabled = _shift(pin=True)
    assert enabled == "-"  # every kernel is the baseline one
    # a user's own partial setting (as on a CPU without AVX-512) is replaced by the full list: same bytes
    partial = {"NPY_DISABLE_CPU_FEATURES": " ".join(dispatch_targets()[-1:])}
    assert _shift(pin=True, env_extra=partial) == (digest, "-")


def test_without_the_pin_this_cpus_vector_kernels_change_the_bytes():
    digest_free, enabled = _shift(pin=False)
    if enabled == "-":
        pytest.skip("this CPU has no numpy dispatch target above the baseline: nothing to compare")
    assert digest_free != _shift(pin=True)[0]
