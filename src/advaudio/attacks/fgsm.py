"""Fast gradient sign method (Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572): foolbox's
``LinfFastGradientAttack``, ``x' = clip(x + epsilon * sign(grad_x CE))``.

Used by FGSM adversarial retraining (Eq. 14 of the study) and by the sanity check "iterative attacks are
at least as strong as FGSM".
"""

from __future__ import annotations

import math
from typing import Any

import foolbox as fb

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import AttackInterface, check_bound


@ATTACKS.register("fgsm")
class FGSM(AttackInterface, fb.attacks.LinfFastGradientAttack):
    """Untargeted one-step L-infinity FGSM (foolbox), no random start; the call's ``epsilon`` is the step."""


    @classmethod
    def max_calls(cls, rung: dict[str, Any], *, n_classes: int, n_features: int) -> tuple[int, int]:
        """One gradient."""
        return 1, 0

    targeted = False
    black_box = False

    def __init__(self) -> None:
        super().__init__(random_start=False)

    @classmethod
    def bounded(cls, rung: dict[str, Any], *, bound: float, n_features: int) -> dict[str, Any]:
        """``rung`` with ``epsilon = min(epsilon, bound / sqrt(d))``: an L-inf step of that size has L2 norm at
        most ``bound``, so the output is inside the ball by construction.

        A rung without ``epsilon`` is returned unchanged, for the caller to reject.
        """
        check_bound(bound, n_features)
        if "epsilon" not in rung:
            return dict(rung)
        return {**rung, "epsilon": min(float(rung["epsilon"]), float(bound) / math.sqrt(n_features))}
