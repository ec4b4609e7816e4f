"""DeepFool, L2, untargeted (Moosavi-Dezfooli et al. 2016, https://arxiv.org/abs/1511.04599), Eq. 4.

foolbox's ``L2DeepFoolAttack``; each step linearises the decision boundary towards the ``candidates`` most
likely classes (all classes by default) and steps to the nearest one, with ``overshoot``.
"""

from __future__ import annotations

from typing import Any

import foolbox as fb

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import AttackInterface, rung_setting


@ATTACKS.register("deepfool")
class DeepFool(AttackInterface, fb.attacks.L2DeepFoolAttack):
    """L2 DeepFool (foolbox), ``loss='logits'``; the budget ladder raises ``steps`` (study: 100..600).

    Parameters
    ----------
    steps : int
        Maximum number of linearisation steps.
    candidates : int, optional
        How many of the most likely classes (the label included) each step considers; None (default) means
        all classes. foolbox's default of 10 would ignore 40 of ESC-50's 50 classes and can miss the nearest
        boundary; a small value trades that for speed (one gradient per candidate per step).
    overshoot : float
        Relative step beyond the linearised boundary.
    """


    @classmethod
    def max_calls(cls, rung: dict[str, Any], *, n_classes: int, n_features: int) -> tuple[int, int]:
        """Each step differentiates every candidate class (all of them by default)."""
        candidates = rung_setting(cls, rung, "candidates") or n_classes
        return int(rung_setting(cls, rung, "steps")) * min(int(candidates), n_classes), 0

    targeted = False
    black_box = False

    def __init__(self, *, steps: int = 100, candidates: int | None = None, overshoot: float = 0.02) -> None:
        super().__init__(steps=steps, candidates=candidates, overshoot=overshoot, loss="logits")
