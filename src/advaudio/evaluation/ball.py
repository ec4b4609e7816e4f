"""The L2 ball of the bounded attacks: one projection and one "within the bound" predicate for everything.

Projection, verification, the metrics (``fr_at_bound``, the curves), the sanity checks and the re-check all
decide "within the bound" with :func:`within_bound`. Projecting onto the ball in float32 and measuring the
norm again lands a hair above the radius for many samples (rounding of the scale factor and of the sum of
squares, relative error ~1e-7 per operation over up to ~2e6 elements), so the predicate allows a relative
slack of :data:`BOUND_RTOL` = 1e-5: far below any perturbation size the tables distinguish (they print
three significant digits) and far above float32 rounding (docs/PROTOCOL.md "Bounded attacks").
"""

from __future__ import annotations

import numpy as np
import torch

BOUND_RTOL = 1e-5


def within_bound(l2: np.ndarray | torch.Tensor | float, bound: float) -> np.ndarray | torch.Tensor | bool:
    """``l2 <= bound * (1 + BOUND_RTOL)``, elementwise, for numpy arrays, tensors or floats."""
    return l2 <= bound * (1.0 + BOUND_RTOL)


def project_l2(x: torch.Tensor, adv: torch.Tensor, bound: float) -> torch.Tensor:
    """Project each row of ``adv`` onto the L2 ball of radius ``bound`` around the same row of ``x``.

    Rows already inside are returned unchanged; the others are scaled towards ``x``. A point between two
    points of the box [lo, hi] stays in the box, so no clipping is needed afterwards.
    """
    delta = adv - x
    norms = delta.flatten(1).norm(dim=1)
    factor = torch.where(norms > bound, bound / norms.clamp_min(1e-30), torch.ones_like(norms))
    return x + delta * factor.view(-1, *[1] * (x.dim() - 1))
