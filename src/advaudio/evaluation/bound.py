"""The L2 bound of Table II (``attack.bound``) at the input size in use.

The study bounds ||delta||_2 <= 3 on spectrograms of 768 (or, with tonnetz, 1308) rows x 1568 columns. The
same L2 bound on a smaller input allows a far larger change per element: at 32x32 it is a per-element RMS
of 0.094 against the study's 0.002, and nearly every victim is fooled within it before and after
retraining. ``attack.bound_scaling: study_rms`` therefore scales the bound by sqrt(n / n_study), n being
the input's element count and n_study that of the same representation at the study's size (the
``spectrogram`` section of ``profiles/study.yaml``), so the bound allows the same per-element RMS as in the
study. At the study's size the factor is 1. ``none`` uses ``attack.bound`` as it is.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

from advaudio.config import PROFILES_DIR, Params, load_profile, params_from_dict
from advaudio.features.representations import n_rows


def study_input_shape(*, params: Params, representation: str, profiles_dir: str | Path = PROFILES_DIR) -> tuple[int, int]:
    """``(rows, columns)`` of ``representation`` with the study profile's ``spectrogram`` settings merged
    over ``params.spectrogram``."""
    overrides = load_profile("study", profiles_dir=profiles_dir).get("spectrogram", {})
    spec = params_from_dict({"spectrogram": {**dataclasses.asdict(params.spectrogram), **overrides}}).spectrogram
    return n_rows(name=representation, config=spec), spec.width


def effective_bound(
    *, params: Params, representation: str, input_shape: Sequence[int], profiles_dir: str | Path = PROFILES_DIR
) -> float:
    """The L2 bound the attack stages apply to inputs of ``input_shape`` ``(1, H, W)`` (module doc)."""
    bound = float(params.attack.bound)
    if params.attack.bound_scaling == "none":
        return bound
    rows, cols = study_input_shape(params=params, representation=representation, profiles_dir=profiles_dir)
    n = math.prod(int(s) for s in input_shape)
    return bound * math.sqrt(n / (rows * cols))
