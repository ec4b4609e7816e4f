"""Fast gradient sign method (Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572).

Used by FGSM adversarial retraining (Eq. 14 of the study) and by the sanity check "iterative attacks are
at least as strong as FGSM".
"""

from __future__ import annotations

from typing import Any

import eagerpy as ep
import foolbox as fb
import torch
import torch.nn.functional as F
from foolbox.attacks.base import raise_if_kwargs

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import criterion_classes, raw_model


def fgsm_examples(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Return ``clip(x + epsilon * sign(grad_x CE(model(x), y)))``, detached.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits. Its train/eval mode is left as the caller set it.
    x : torch.Tensor
        Inputs, shape (B, C, H, W), inside ``bounds``.
    y : torch.Tensor
        True labels, shape (B,).
    epsilon : float
        L-infinity step size in input units.
    bounds : tuple of float
        Valid input range; the result is clipped to it.
    """
    x_adv = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x_adv), y)
    (grad,) = torch.autograd.grad(loss, x_adv)
    return (x + epsilon * grad.sign()).clamp(*bounds).detach()


@ATTACKS.register("fgsm")
class FGSM(fb.attacks.base.FixedEpsilonAttack):
    """:func:`fgsm_examples` behind foolbox's ``FixedEpsilonAttack`` interface (L-infinity, one step).

    Untargeted: used by the sanity check "iterative attacks are at least as strong as FGSM".
    """

    distance = fb.distances.linf
    targeted = False
    black_box = False

    def run(self, model: fb.Model, inputs: Any, criterion: Any, *, epsilon: float, **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x, restore_type = ep.astensor_(inputs)
        classes, targeted = criterion_classes(criterion)
        if targeted:
            raise ValueError("fgsm is untargeted; pass foolbox.criteria.Misclassification")
        adv = fgsm_examples(_ForwardOnly(model), x.raw, classes, epsilon=epsilon, bounds=tuple(model.bounds))
        return restore_type(ep.astensor(adv))


class _ForwardOnly(torch.nn.Module):
    """Present a foolbox model as a torch module for :func:`fgsm_examples`."""

    def __init__(self, model: fb.Model) -> None:
        super().__init__()
        self._call = raw_model(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(x)
