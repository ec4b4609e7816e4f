"""Fast gradient sign method (Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572).

Used by FGSM adversarial retraining (Eq. 14 of the study) and by the sanity check "iterative attacks are
at least as strong as FGSM".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
