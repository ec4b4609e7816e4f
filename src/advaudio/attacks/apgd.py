"""Auto-PGD in L2 (Croce & Hein 2020, https://arxiv.org/abs/2003.01690): the parameter-free strong attack the
study's six are checked against, with the cross-entropy (``apgd_ce``) and the difference-of-logits-ratio
(``apgd_dlr``) losses, untargeted.

A reference attack (:attr:`AttackInterface.reference`): it runs in the same stages, ladders and bounded mode as
the six, but the study's tables and means leave it out; the report sets its bounded fooling rate beside the six's
and flags cells where it finds many more adversarials (docs/PROTOCOL.md "Reference attack").

Written here, following Algorithm 1 of the paper and the authors' code (github.com/fra31/auto-attack,
``autopgd_base.py``), because no maintained library that provides it installs beside this project:
torchattacks pins ``requests~=2.25.1`` (DVC needs a newer one), adv_lib needs visdom, which no longer builds,
and ART's ``AutoProjectedGradientDescent`` returns each sample's last iterate instead of the first adversarial
iterate it met (so it reports fewer successes than the algorithm finds). What the algorithm does:

- a random start on the sphere of radius eps around x (clipped to [0, 1]), drawn from a generator seeded with
  the rung's ``seed``, so results repeat;
- steps of size eta (2 eps at first) along the L2-normalised gradient, with momentum 0.75 after the first step,
  each projected onto the eps ball and [0, 1];
- at checkpoints (22 % of the iterations, then shrinking by 3 % down to 6 %) eta halves for the samples whose
  loss rose in fewer than ``rho`` of the steps since the last checkpoint, or whose best loss and eta did not
  change, and those samples restart from their best point;
- every iterate that is adversarial is kept: the result of a sample is the last adversarial iterate met, else
  its last iterate; ``n_restarts`` restarts attack only the samples not yet fooled.
"""

from __future__ import annotations

from typing import Any, Callable

import eagerpy as ep
import foolbox as fb
import torch
import torch.nn.functional as F
from foolbox.attacks.base import raise_if_kwargs, verify_input_bounds

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import (AT_LEAST_ONE, FRACTION, AttackInterface, cap_epsilon_at_bound, criterion_classes,
                                     project_l2_ball, raw_model, rung_setting)

LOSSES = ("ce", "dlr")


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample DLR loss, -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3): larger is closer to misclassified.

    Invariant to shifting and scaling the logits. Needs at least three classes.
    """
    if logits.shape[-1] < 3:
        raise ValueError(f"the DLR loss needs at least 3 classes; the model has {logits.shape[-1]}")
    ordered, order = logits.sort(dim=1)
    top_is_label = (order[:, -1] == labels).to(logits.dtype)
    z_y = logits.gather(1, labels[:, None])[:, 0]
    other = ordered[:, -2] * top_is_label + ordered[:, -1] * (1.0 - top_is_label)
    return -(z_y - other) / (ordered[:, -1] - ordered[:, -3] + 1e-12)


def _loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "ce":
        return lambda logits, labels: F.cross_entropy(logits, labels, reduction="none")
    if name == "dlr":
        return dlr_loss
    raise ValueError(f"apgd loss = {name!r}; choose from {list(LOSSES)}")


def _l2_normalise(v: torch.Tensor) -> torch.Tensor:
    return v / v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (v.dim() - 1))


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD reviews each sample's step size: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j +
    max(p_j - p_{j-1} - 0.03, 0.06), times ``steps`` (the paper's schedule, as the authors' code rounds it)."""
    first, decrease, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    points, at, length = [], first, first
    while at < steps:
        points.append(at)
        length = max(length - decrease, least)
        at += length
    return points


def apgd_l2(
    call: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    labels: torch.Tensor,
    *,
    epsilon: float,
    steps: int = 100,
    n_restarts: int = 1,
    rho: float = 0.75,
    loss: str = "ce",
    generator: torch.Generator | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Untargeted L2 APGD; returns each sample's adversarial iterate (its last iterate if none was found).

    Parameters
    ----------
    call : callable
        Maps a batch of inputs to logits, differentiably.
    x0 : torch.Tensor
        Inputs ``(n, ...)`` inside ``bounds``.
    labels : torch.Tensor
        True labels ``(n,)``.
    epsilon : float
        L2 radius around each input.
    steps : int
        Iterations per restart.
    n_restarts : int
        Restarts; each attacks only the samples no earlier one fooled.
    rho : float
        Fraction of steps since the last checkpoint whose loss must have risen for the step size to stay.
    loss : str
        ``"ce"`` or ``"dlr"``.
    generator : torch.Generator, optional
        Draws the random starts (on ``x0``'s device).
    bounds : tuple of float
        Valid input range.
    """
    loss_fn = _loss_fn(loss)
    result = x0.detach().clone()
    fooled = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
    for _ in range(n_restarts):
        todo = torch.nonzero(~fooled).flatten()
        if todo.numel() == 0:
            break
        adv, found = _apgd_run(call, x0[todo].detach(), labels[todo], epsilon=epsilon, steps=steps, rho=rho,
                               loss_fn=loss_fn, generator=generator, bounds=bounds)
        result[todo] = adv
        fooled[todo] = found
    return result


def _value_and_grad(call, loss_fn, x: torch.Tensor, labels: torch.Tensor):
    x = x.detach().requires_grad_(True)
    logits = call(x)
    per_sample = loss_fn(logits.float(), labels)
    (grad,) = torch.autograd.grad(per_sample.sum(), x)
    return per_sample.detach(), grad.detach(), logits.detach().argmax(dim=-1) != labels


def _apgd_run(call, x0, labels, *, epsilon, steps, rho, loss_fn, generator, bounds):
    """One restart of Algorithm 1 on every sample of ``x0``: ``(adversarial or last iterate, fooled)``."""
    n, view = len(x0), (-1, *[1] * (x0.dim() - 1))
    start = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x = (x0 + epsilon * _l2_normalise(start)).clamp(*bounds)
    loss, grad, fooled = _value_and_grad(call, loss_fn, x, labels)
    found = x.clone()
    best_x, best_grad, best_loss = x.clone(), grad.clone(), loss.clone()
    eta = torch.full((n,), 2.0 * epsilon, device=x0.device, dtype=x0.dtype)
    review = set(checkpoints(steps))
    last_review, rises = 0, torch.zeros(n, device=x0.device)
    best_at_review, eta_at_review = best_loss.clone(), eta.clone()
    previous = x.clone()
    for i in range(steps):
        momentum = 0.75 if i > 0 else 1.0
        z = project_l2_ball(x0, x + eta.view(view) * _l2_normalise(grad), epsilon, bounds)
        moved = project_l2_ball(x0, x + momentum * (z - x) + (1.0 - momentum) * (x - previous), epsilon, bounds)
        previous, x = x, moved
        new_loss, grad, now_fooled = _value_and_grad(call, loss_fn, x, labels)
        found[now_fooled] = x[now_fooled]
        fooled |= now_fooled
        rises += (new_loss > loss).float()
        loss = new_loss
        better = new_loss > best_loss
        best_x[better], best_grad[better], best_loss[better] = x[better], grad[better], new_loss[better]
        if i + 1 in review:
            stalled = (rises <= rho * (i + 1 - last_review)) | ((eta == eta_at_review) & (best_loss == best_at_review))
            eta[stalled] /= 2.0
            x[stalled], grad[stalled] = best_x[stalled], best_grad[stalled]
            best_at_review, eta_at_review = best_loss.clone(), eta.clone()
            rises.zero_()
            last_review = i + 1
    found[~fooled] = x[~fooled]
    return found.detach(), fooled


class _APGD(AttackInterface, fb.attacks.base.FixedEpsilonAttack):
    """L2 APGD (:func:`apgd_l2`) behind foolbox's ``FixedEpsilonAttack`` interface; the call's ``epsilon`` is the
    L2 radius."""

    loss_name: str
    targeted = False
    black_box = False
    seeded = True
    reference = True
    rung_limits = {"steps": AT_LEAST_ONE, "n_restarts": AT_LEAST_ONE, "rho": FRACTION}
    distance = fb.distances.l2

    def __init__(self, *, steps: int = 100, n_restarts: int = 1, rho: float = 0.75, seed: int = 0) -> None:
        self.steps, self.n_restarts, self.rho, self.seed = steps, n_restarts, rho, seed

    @classmethod
    def max_calls(cls, rung: dict[str, Any], *, n_classes: int, n_features: int) -> tuple[int, int]:
        """One gradient at each restart's start and per step; foolbox's success check is one forward."""
        steps, restarts = int(rung_setting(cls, rung, "steps")), int(rung_setting(cls, rung, "n_restarts"))
        return (steps + 1) * restarts, 1

    @classmethod
    def bounded(cls, rung: dict[str, Any], *, bound: float, n_features: int) -> dict[str, Any]:
        """``rung`` with ``epsilon = min(epsilon, bound)``: the output is then inside the ball by construction."""
        return cap_epsilon_at_bound(rung, bound=bound, n_features=n_features)

    def run(self, model: fb.Model, inputs: Any, criterion: Any, *, epsilon: float, **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x0_ep, restore_type = ep.astensor_(inputs)
        verify_input_bounds(x0_ep, model)
        labels, targeted = criterion_classes(criterion)
        if targeted:
            raise ValueError(f"{type(self).__name__} is untargeted; it got a targeted criterion")
        x0 = x0_ep.raw
        generator = torch.Generator(device=x0.device).manual_seed(int(self.seed) % 2**63)
        x = apgd_l2(raw_model(model), x0, labels, epsilon=float(epsilon), steps=self.steps,
                    n_restarts=self.n_restarts, rho=self.rho, loss=self.loss_name, generator=generator,
                    bounds=tuple(model.bounds))
        return restore_type(ep.astensor(x))


@ATTACKS.register("apgd_ce")
class APGDCE(_APGD):
    """APGD-CE: L2 APGD on the cross-entropy loss (reference attack)."""

    loss_name = "ce"


@ATTACKS.register("apgd_dlr")
class APGDDLR(_APGD):
    """APGD-DLR: L2 APGD on the difference-of-logits-ratio loss (reference attack; needs >= 3 classes)."""

    loss_name = "dlr"
