"""Jacobian-based saliency map attack, targeted, L0 (Papernot et al. 2016, https://arxiv.org/abs/1511.07528).

foolbox 3 lacks it; written here against foolbox's ``MinimizationAttack`` interface, batched in torch on the
model's device. The pairwise saliency map of the paper needs O(d^2) memory per sample, too much at
spectrogram sizes, so this is the **single-feature** map (Eq. 2 of the study): with
alpha = dZ_t/dx and beta = sum_{j != t} dZ_j/dx on the logits Z, a feature may rise if alpha > 0 > beta
(saliency alpha * |beta|) or fall if alpha < 0 < beta (saliency |alpha| * beta). Each iteration changes the
most salient feature by ``theta`` (clipped to the bounds) and removes it from the search domain; a sample
stops at its first adversarial iterate (and leaves the batch) or when ``gamma`` of its features are used.
"""

from __future__ import annotations

from typing import Any

import eagerpy as ep
import foolbox as fb
import numpy as np
import torch
from foolbox.attacks.base import raise_if_kwargs, verify_input_bounds

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import criterion_classes, is_adversarial, raw_model


@ATTACKS.register("jsma")
class JSMA(fb.attacks.base.MinimizationAttack):
    """Targeted single-feature JSMA.

    Parameters
    ----------
    max_iterations : int
        Most features changed per sample (one per iteration).
    theta : float
        Change applied to a chosen feature, in input units (sign set by the saliency map).
    gamma : float
        Largest fraction of features that may be changed; caps ``max_iterations``.
    """

    distance = fb.distances.l0
    targeted = True
    black_box = False

    def __init__(self, *, max_iterations: int = 100, theta: float = 1.0, gamma: float = 1.0) -> None:
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"jsma gamma = {gamma!r}; expected a fraction in (0, 1]")
        if theta <= 0.0:
            raise ValueError(f"jsma theta = {theta!r}; expected a positive step")
        self.max_iterations = max_iterations
        self.theta = theta
        self.gamma = gamma
        self.last_iterations = np.zeros(0, dtype=np.int64)

    def run(self, model: fb.Model, inputs: Any, criterion: Any, *, early_stop: float | None = None,
            **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x0_ep, restore_type = ep.astensor_(inputs)
        verify_input_bounds(x0_ep, model)
        targets, targeted = criterion_classes(criterion)
        if not targeted:
            raise ValueError("jsma is targeted; pass foolbox.criteria.TargetedMisclassification")
        call = raw_model(model)
        lo, hi = model.bounds
        x = x0_ep.raw.clone()
        n, d = len(x), x[0].numel()
        budget = min(self.max_iterations, int(self.gamma * d))
        domain = torch.ones(n, d, dtype=torch.bool, device=x.device)  # features not yet changed
        iterations = torch.zeros(n, dtype=torch.long, device=x.device)
        active = torch.arange(n, device=x.device)
        for it in range(budget + 1):
            if active.numel() == 0:
                break
            xa = x[active].detach().requires_grad_(it < budget)
            logits = call(xa)  # (b, K)
            t = targets[active]
            adv = is_adversarial(logits.detach(), t, targeted=True)
            if it == budget or bool(adv.all()):
                break
            keep = ~adv
            # finished rows are masked out of both sums, so their gradients are zero
            z_t = (logits.gather(1, t[:, None]).squeeze(1) * keep).sum()
            z_all = (logits.sum(dim=1) * keep).sum()
            (alpha,) = torch.autograd.grad(z_t, xa, retain_graph=True)
            (total,) = torch.autograd.grad(z_all, xa)
            idx = active[keep]
            alpha = alpha[keep].flatten(1)  # (b, d)
            beta = total[keep].flatten(1) - alpha
            xf = xa.detach()[keep].flatten(1)
            dom = domain[idx]
            up = (alpha > 0) & (beta < 0) & (xf < hi) & dom
            down = (alpha < 0) & (beta > 0) & (xf > lo) & dom
            saliency = torch.where(up | down, (alpha * beta).abs(), torch.zeros_like(alpha))
            best_val, best = saliency.max(dim=1)
            movable = best_val > 0  # no salient feature left: the sample has failed
            rows = torch.arange(len(idx), device=x.device)
            direction = torch.where(up[rows, best], 1.0, -1.0)
            new_val = (xf[rows, best] + direction * self.theta).clamp(lo, hi)
            xf[rows[movable], best[movable]] = new_val[movable]
            domain[idx[movable], best[movable]] = False
            x[idx] = xf.view(-1, *x.shape[1:])
            iterations[idx[movable]] += 1
            active = idx[movable]
        self.last_iterations = iterations.cpu().numpy()
        return restore_type(ep.astensor(x))
