"""Carlini-Wagner L2 (Carlini & Wagner 2017, https://arxiv.org/abs/1608.04644), Eq. 5-7 of the study.

foolbox's ``L2CarliniWagnerAttack``. The study's budget ladder pairs the constant c in {1, 3, 5, 7} with
{25, 100, 1000, 1500} Adam steps; c is foolbox's ``initial_const``, refined by ``binary_search_steps``.
"""

from __future__ import annotations

import foolbox as fb

from advaudio.attacks import ATTACKS


@ATTACKS.register("cw")
class CarliniWagner(fb.attacks.L2CarliniWagnerAttack):
    """Targeted CW-L2 (foolbox) with ``c`` as the initial constant of the binary search."""

    targeted = True
    black_box = False

    def __init__(
        self,
        *,
        c: float = 1.0,
        steps: int = 100,
        binary_search_steps: int = 5,
        stepsize: float = 0.01,
        confidence: float = 0.0,
    ) -> None:
        super().__init__(
            binary_search_steps=binary_search_steps,
            steps=steps,
            stepsize=stepsize,
            confidence=confidence,
            initial_const=c,
            abort_early=True,
        )
