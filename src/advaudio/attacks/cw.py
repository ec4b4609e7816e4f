"""Carlini-Wagner L2 (Carlini & Wagner 2017, https://arxiv.org/abs/1608.04644), Eq. 5-7 of the study.

foolbox's ``L2CarliniWagnerAttack``. The study's budget ladder pairs the constant c in {1, 3, 5, 7} with
{25, 100, 1000, 1500} Adam steps; c is foolbox's ``initial_const``, refined by ``binary_search_steps``.

foolbox returns the all-zero image for a sample it never found an adversarial for; this subclass returns
the input instead (see :meth:`CarliniWagner.run`), so a failed row can never pass as a success on a model
that happens to put the zero image in the target class.
"""

from __future__ import annotations

from typing import Any

import eagerpy as ep
import foolbox as fb
import torch

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, AttackInterface, rung_setting


@ATTACKS.register("cw")
class CarliniWagner(AttackInterface, fb.attacks.L2CarliniWagnerAttack):
    """Targeted CW-L2 (foolbox) with ``c`` as the initial constant of the binary search."""


    @classmethod
    def max_calls(cls, rung: dict[str, Any], *, n_classes: int, n_features: int) -> tuple[int, int]:
        """One gradient per Adam step of every binary-search step (abort_early stops sooner)."""
        return int(rung_setting(cls, rung, "steps")) * int(rung_setting(cls, rung, "binary_search_steps")), 0

    targeted = True
    black_box = False
    rung_limits = {"c": POSITIVE, "steps": AT_LEAST_ONE, "binary_search_steps": AT_LEAST_ONE, "stepsize": POSITIVE,
                   "confidence": NON_NEGATIVE}

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

    def run(self, model: fb.Model, inputs: Any, criterion: Any, *, early_stop: float | None = None,
            **kwargs: Any) -> Any:
        """foolbox's CW, with each failed row (no adversarial found) returned as its input.

        foolbox marks a failed row by returning all zeros, so a row that is exactly all zeros while its
        input is not is taken as failed. (A genuine adversarial that is exactly the zero image would be taken
        as failed too; CW searches in tanh space, where exact zeros need full saturation, and such a result
        would be the largest perturbation possible anyway.)
        """
        x, restore_type = ep.astensor_(inputs)
        adv = ep.astensor(super().run(model, x, criterion, early_stop=early_stop, **kwargs)).raw
        x = x.raw
        failed = ~adv.flatten(1).any(dim=1) & x.flatten(1).any(dim=1)
        return restore_type(ep.astensor(torch.where(failed.view(-1, *[1] * (x.dim() - 1)), x, adv)))
