"""L2 basic iterative method (Kurakin et al. 2017, https://arxiv.org/abs/1607.02533), Eq. 1 of the study.

``bim_b`` runs a fixed number of iterations (foolbox's ``L2BasicIterativeAttack``). ``bim_a`` follows the
same trajectory but stops each sample at its first adversarial iterate; foolbox 3 lacks it, so it is written
here: the functional core :func:`bim_a` (which also returns each sample's step count) behind foolbox's
``FixedEpsilonAttack`` interface (:class:`BIMA`), dropping finished samples from the batch.

The study's Eq. 1 is the L-inf form, untargeted, with step zeta (1 in the study), x'_0 = x:

    x'_{n+1} = clip{ x'_n + zeta * sgn(grad_x J[x'_n, l(x)]) }     clip: into [-eps, eps] around x

Both BIMs here run it in L2 (docs/PROTOCOL.md "Norms") and, in the budget search, targeted: the
sign becomes the L2-normalised gradient, the [-eps, eps] clip a projection onto the L2 ball of radius eps
around x, followed by a clip to the input bounds [0, 1]. With J the cross-entropy of the logits and t the
target class:

    g_n      = grad_x J(x'_n, t)
    y_{n+1}  = x'_n - alpha * g_n / max(||g_n||_2, 1e-12)          alpha = rel_stepsize * eps (or abs_stepsize)
    x'_{n+1} = clip_[0,1]( x + (y_{n+1} - x) * min(1, eps / max(||y_{n+1} - x||_2, 1e-12)) )

(untargeted, as the sanity checks run BIM-b: + alpha * g_n with g_n = grad_x J(x'_n, l(x)), ascending the
label's loss). BIM-b takes ``steps`` updates n = 0 .. steps - 1; BIM-a stops a sample at the first x'_n that is
adversarial (top-1 = t; untargeted: top-1 != l(x)), after at most ``steps`` updates (none if x already is).
"""

from __future__ import annotations

from typing import Any, Callable

import eagerpy as ep
import foolbox as fb
import torch
import torch.nn.functional as F
from foolbox.attacks.base import raise_if_kwargs, verify_input_bounds

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import (AT_LEAST_ONE, POSITIVE, AttackInterface, cap_epsilon_at_bound, criterion_classes,
                                     is_adversarial, project_l2_ball, raw_model, rung_setting)


class _L2Bounded(AttackInterface):
    """Targeted white-box L2 fixed-epsilon attack: within a bound, the epsilon is capped at it."""


    @classmethod
    def max_calls(cls, rung: dict[str, Any], *, n_classes: int, n_features: int) -> tuple[int, int]:
        """One gradient per step, and one forward to check the last iterate."""
        return int(rung_setting(cls, rung, "steps")), 1

    targeted = True
    black_box = False
    rung_limits = {"steps": AT_LEAST_ONE, "rel_stepsize": POSITIVE, "abs_stepsize": POSITIVE}  # epsilon: L2 radius

    @classmethod
    def bounded(cls, rung: dict[str, Any], *, bound: float, n_features: int) -> dict[str, Any]:
        """``rung`` with ``epsilon = min(epsilon, bound)``: the output is then inside the ball by construction.

        A rung without ``epsilon`` is returned unchanged, for the caller to reject.
        """
        return cap_epsilon_at_bound(rung, bound=bound, n_features=n_features)


@ATTACKS.register("bim_b")
class BIMB(_L2Bounded, fb.attacks.L2BasicIterativeAttack):
    """BIM-b: L2 BIM with a fixed number of ``steps`` of size ``rel_stepsize * epsilon`` (foolbox)."""

    def __init__(self, *, steps: int = 10, rel_stepsize: float = 0.2, abs_stepsize: float | None = None) -> None:
        super().__init__(rel_stepsize=rel_stepsize, abs_stepsize=abs_stepsize, steps=steps, random_start=False)


def bim_a(
    call: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    classes: torch.Tensor,
    *,
    targeted: bool,
    epsilon: float,
    steps: int = 10,
    rel_stepsize: float = 0.2,
    abs_stepsize: float | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """BIM-a: the L2 BIM-b update, stopping each sample at its first adversarial iterate.

    The update equals foolbox's L2 BIM (normalised gradient of the cross-entropy, projection onto the
    epsilon ball, clipping to the bounds), so the result for a sample that stopped after ``k`` steps is
    BIM-b's result with ``steps=k``.

    Parameters
    ----------
    call : callable
        Maps a batch of inputs to logits, differentiably (a torch module or :func:`raw_model`).
    x0 : torch.Tensor
        Inputs, ``(n, ...)``, inside ``bounds``.
    classes : torch.Tensor
        Target classes (``targeted``) or true labels, ``(n,)``.
    targeted : bool
        Descend the target's cross-entropy (True) or ascend the label's.
    epsilon : float
        L2 radius around each input.
    steps : int
        Maximum number of iterations.
    rel_stepsize : float
        Step size relative to ``epsilon``.
    abs_stepsize : float, optional
        Absolute step size; takes precedence.
    bounds : tuple of float
        Valid input range; every iterate is clipped to it.

    Returns
    -------
    x : torch.Tensor
        The last iterate of each sample, detached, shaped like ``x0``.
    iterations : torch.Tensor
        Steps each sample took, ``(n,)`` int64 (0 for samples already adversarial).
    """
    lo, hi = bounds
    step = abs_stepsize if abs_stepsize is not None else rel_stepsize * epsilon
    sign = -1.0 if targeted else 1.0  # descend the target's loss, ascend the label's
    x = x0.detach().clone()
    iterations = torch.zeros(len(x0), dtype=torch.long, device=x0.device)
    active = torch.arange(len(x0), device=x0.device)
    for it in range(steps + 1):
        if active.numel() == 0:
            break
        xa = x[active].detach().requires_grad_(it < steps)
        logits = call(xa)
        adv = is_adversarial(logits.detach(), classes[active], targeted=targeted)
        if it == steps or bool(adv.all()):
            break
        # the loss of finished rows is masked out, so their gradient is zero and they do not move
        loss = (F.cross_entropy(logits, classes[active], reduction="none") * (~adv)).sum()
        (grad,) = torch.autograd.grad(loss, xa)
        keep = ~adv
        idx, g, xk = active[keep], grad[keep], xa.detach()[keep]
        view = (-1, *[1] * (g.dim() - 1))
        xk = xk + sign * step * g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
        x[idx] = project_l2_ball(x0[idx], xk, epsilon, (lo, hi))
        iterations[idx] += 1
        active = idx
    return x.detach(), iterations


@ATTACKS.register("bim_a")
class BIMA(_L2Bounded, fb.attacks.base.FixedEpsilonAttack):
    """BIM-a (:func:`bim_a`) behind foolbox's ``FixedEpsilonAttack`` interface; ``run`` returns the adversarials.

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

    def __init__(self, *, steps: int = 10, rel_stepsize: float = 0.2, abs_stepsize: float | None = None) -> None:
        self.steps = steps
        self.rel_stepsize = rel_stepsize
        self.abs_stepsize = abs_stepsize

    def run(self, model: fb.Model, inputs: Any, criterion: Any, *, epsilon: float, **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x0_ep, restore_type = ep.astensor_(inputs)
        verify_input_bounds(x0_ep, model)
        classes, targeted = criterion_classes(criterion)
        x, _ = bim_a(raw_model(model), x0_ep.raw, classes, targeted=targeted, epsilon=epsilon, steps=self.steps,
                     rel_stepsize=self.rel_stepsize, abs_stepsize=self.abs_stepsize, bounds=tuple(model.bounds))
        return restore_type(ep.astensor(x))
