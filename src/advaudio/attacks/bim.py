"""L2 basic iterative method (Kurakin et al. 2017, https://arxiv.org/abs/1607.02533), Eq. 1 of the study.

``bim_b`` runs a fixed number of iterations (foolbox's ``L2BasicIterativeAttack``). ``bim_a`` follows the
same trajectory but stops each sample at its first adversarial iterate; foolbox 3 lacks it, so it is written
here against foolbox's ``FixedEpsilonAttack`` interface and drops finished samples from the batch.
"""

from __future__ import annotations

from typing import Any

import eagerpy as ep
import foolbox as fb
import numpy as np
import torch
import torch.nn.functional as F
from foolbox.attacks.base import raise_if_kwargs, verify_input_bounds

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import criterion_classes, is_adversarial, raw_model


@ATTACKS.register("bim_b")
class BIMB(fb.attacks.L2BasicIterativeAttack):
    """BIM-b: L2 BIM with a fixed number of ``steps`` of size ``rel_stepsize * epsilon`` (foolbox)."""

    targeted = True
    black_box = False

    def __init__(self, *, steps: int = 10, rel_stepsize: float = 0.2, abs_stepsize: float | None = None) -> None:
        super().__init__(rel_stepsize=rel_stepsize, abs_stepsize=abs_stepsize, steps=steps, random_start=False)


@ATTACKS.register("bim_a")
class BIMA(fb.attacks.base.FixedEpsilonAttack):
    """BIM-a: the BIM-b update, stopping each sample at its first adversarial iterate.

    The update equals foolbox's L2 BIM (normalised gradient of the cross-entropy, projection onto the
    epsilon ball, clipping to the bounds), so BIM-a's result for a sample that stopped after ``k`` steps is
    BIM-b's result with ``steps=k``. ``last_iterations`` holds the per-sample step counts of the last call.

    Parameters
    ----------
    steps : int
        Maximum number of iterations.
    rel_stepsize : float
        Step size relative to epsilon.
    abs_stepsize : float, optional
        Absolute step size; takes precedence.
    """

    distance = fb.distances.l2
    targeted = True
    black_box = False

    def __init__(self, *, steps: int = 10, rel_stepsize: float = 0.2, abs_stepsize: float | None = None) -> None:
        self.steps = steps
        self.rel_stepsize = rel_stepsize
        self.abs_stepsize = abs_stepsize
        self.last_iterations = np.zeros(0, dtype=np.int64)

    def run(self, model: fb.Model, inputs: Any, criterion: Any, *, epsilon: float, **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x0_ep, restore_type = ep.astensor_(inputs)
        verify_input_bounds(x0_ep, model)
        classes, targeted = criterion_classes(criterion)
        call = raw_model(model)
        lo, hi = model.bounds
        step = self.abs_stepsize if self.abs_stepsize is not None else self.rel_stepsize * epsilon
        sign = -1.0 if targeted else 1.0  # descend the target's loss, ascend the label's

        x0 = x0_ep.raw
        x = x0.clone()
        iterations = torch.zeros(len(x0), dtype=torch.long, device=x0.device)
        active = torch.arange(len(x0), device=x0.device)
        for it in range(self.steps + 1):
            if active.numel() == 0:
                break
            xa = x[active].detach().requires_grad_(it < self.steps)
            logits = call(xa)
            adv = is_adversarial(logits.detach(), classes[active], targeted=targeted)
            if it == self.steps or bool(adv.all()):
                break
            # the loss of finished rows is masked out, so their gradient is zero and they do not move
            loss = (F.cross_entropy(logits, classes[active], reduction="none") * (~adv)).sum()
            (grad,) = torch.autograd.grad(loss, xa)
            keep = ~adv
            idx, g, xk = active[keep], grad[keep], xa.detach()[keep]
            norms = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (g.dim() - 1))
            xk = xk + sign * step * g / norms
            delta = xk - x0[idx]
            dn = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            factor = torch.clamp(epsilon / dn, max=1.0).view(-1, *[1] * (g.dim() - 1))
            x[idx] = (x0[idx] + delta * factor).clamp(lo, hi)
            iterations[idx] += 1
            active = idx
        self.last_iterations = iterations.cpu().numpy()
        return restore_type(ep.astensor(x))
