"""DeepFool, L2, untargeted (Moosavi-Dezfooli et al. 2016, https://arxiv.org/abs/1511.04599), Eq. 4.

foolbox's ``L2DeepFoolAttack``; each step linearises the decision boundary towards the ``candidates`` most
likely classes and steps to the nearest one, with ``overshoot``.
"""

from __future__ import annotations

import foolbox as fb

from advaudio.attacks import ATTACKS


@ATTACKS.register("deepfool")
class DeepFool(fb.attacks.L2DeepFoolAttack):
    """L2 DeepFool (foolbox), ``loss='logits'``; the budget ladder raises ``steps`` (study: 100..600)."""

    targeted = False
    black_box = False

    def __init__(self, *, steps: int = 100, candidates: int = 10, overshoot: float = 0.02) -> None:
        super().__init__(steps=steps, candidates=candidates, overshoot=overshoot, loss="logits")
