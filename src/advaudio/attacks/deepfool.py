"""DeepFool, L2, untargeted (Moosavi-Dezfooli et al. 2016, https://arxiv.org/abs/1511.04599), Eq. 4.

foolbox's ``L2DeepFoolAttack`` (its settings, distances and perturbations, ``loss='logits'``); each step
linearises the decision boundary towards the ``candidates`` most likely classes (all classes by default) and
steps to the nearest one, with ``overshoot``. Its ``run`` is replaced by :func:`deepfool`, the same
algorithm with less work per step: foolbox runs one forward and one backward pass per candidate class and
keeps differentiating samples that are already adversarial ("we could avoid repeated forward passes", its
own comment says); here each step runs one forward pass and one backward pass per candidate over the samples
not yet adversarial only, and keeps a running nearest boundary instead of every class's gradient. A test
checks that both give the same adversarials.

The study's Eq. 4 is DeepFool's step for a binary affine classifier f(x) = w^T x + b, the smallest L2 move
onto its boundary f = 0:

    eps = -f(x) * w / ||w||_2^2

:func:`deepfool` applies it iteratively to the linearised multi-class problem (Moosavi-Dezfooli et al.,
Algorithm 2, L2; foolbox's variant on the logits z). Rank the classes by z(x_0); l is the first, C the
others among the first ``candidates`` (all other classes by default). At iterate x_i:

    f'_k = z_k(x_i) - z_l(x_i),    w'_k = grad_x f'_k(x_i)                            k in C
    k*   = argmin_k |f'_k| / (||w'_k||_2 + 1e-8)                              (the first k on ties)
    r_i  = (|f'_k*| / (||w'_k*||_2 + 1e-8) + 1e-4) * w'_k* / (||w'_k*||_2 + 1e-8)
    x_{i+1} = clip_[0,1]( x_0 + (1 + overshoot) * (r_0 + ... + r_i) )

until the model's top class at x_i differs from the label, or after ``steps`` updates. While x_i is not
adversarial f'_k* <= 0, so without the 1e-8 and 1e-4 guards r_i = -f'_k* * w'_k* / ||w'_k*||_2^2: Eq. 4 with
f = f'_k* and w = w'_k*, the boundary between l and the nearest candidate k*.
"""

from __future__ import annotations

from typing import Any, Callable

import eagerpy as ep
import foolbox as fb
import torch
from foolbox.attacks.base import raise_if_kwargs, verify_input_bounds

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import (AT_LEAST_ONE, MAX_COUNT, NON_NEGATIVE, AttackInterface, Limit, criterion_classes, raw_model,
                                     rung_setting)

_EPS = 1e-8  # foolbox's guard against zero gradient norms
_STEP_PAD = 1e-4  # foolbox's step beyond the linearised boundary "for numerical stability"


def deepfool(call: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, labels: torch.Tensor, *,
             steps: int, candidates: int | None, overshoot: float,
             bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Untargeted L2 DeepFool with foolbox's update rule, one forward pass per step.

    Parameters
    ----------
    call : callable
        Maps a batch of inputs to logits, differentiably.
    x0 : torch.Tensor
        Inputs ``(n, ...)`` inside ``bounds``.
    labels : torch.Tensor
        True classes ``(n,)``; a sample is done once its top-1 class differs.
    steps : int
        Most linearisation steps.
    candidates : int or None
        The most likely classes (at ``x0``, the top one included) each step considers; None means all.
    overshoot : float
        Relative step beyond the accumulated boundary step.
    bounds : tuple of float
        Valid input range; every iterate is clipped to it.

    Returns
    -------
    torch.Tensor
        The last iterate of each sample, detached, shaped like ``x0`` (the input itself where the first
        forward pass already misclassifies it).

    Raises
    ------
    ValueError
        With fewer than two candidate classes.
    """
    lo, hi = bounds
    with torch.no_grad():
        first = call(x0)
    classes = first.argsort(dim=-1).flip(dims=(-1,))  # as foolbox orders them (ties included)
    n_cand = classes.shape[1] if candidates is None else min(int(candidates), classes.shape[1])
    if n_cand < 2:
        raise ValueError(f"deepfool needs at least 2 candidate classes, got {n_cand}")
    classes = classes[:, :n_cand]
    x = x0.detach().clone()
    p_total = torch.zeros_like(x)
    active = torch.arange(len(x), device=x.device)
    for _ in range(steps):
        if active.numel() == 0:
            break
        xa = x[active].requires_grad_(True)
        logits = call(xa)  # (b, K)
        keep = logits.argmax(dim=-1) == labels[active]  # not yet adversarial
        if not bool(keep.any()):
            break
        rows = torch.arange(len(active), device=x.device)
        cls = classes[active]
        l0 = logits[rows, cls[:, 0]]
        best_dist = torch.full((len(active),), float("inf"), device=x.device, dtype=logits.dtype)
        best_grad = torch.zeros_like(xa)
        for k in range(1, n_cand):
            loss = logits[rows, cls[:, k]] - l0  # (b,)
            (grad,) = torch.autograd.grad((loss * keep).sum(), xa, retain_graph=k < n_cand - 1)
            with torch.no_grad():
                dist = loss.detach().abs() / (grad.flatten(1).norm(dim=1) + _EPS)
                closer = dist < best_dist  # strict: the first nearest class wins, as foolbox's argmin
                best_dist = torch.where(closer, dist, best_dist)
                best_grad[closer] = grad[closer]
        with torch.no_grad():
            scale = (best_dist + _STEP_PAD) / (best_grad.flatten(1).norm(dim=1) + _EPS)
            idx = active[keep]
            p_total[idx] += scale[keep].view(-1, *[1] * (x.dim() - 1)) * best_grad[keep]
            x[idx] = (x0[idx] + (1.0 + overshoot) * p_total[idx]).clamp(lo, hi)
        active = idx  # the others are adversarial and stay as they are
    return x.detach()


@ATTACKS.register("deepfool")
class DeepFool(AttackInterface, fb.attacks.L2DeepFoolAttack):
    """L2 DeepFool (foolbox's settings; :func:`deepfool` runs it), ``loss='logits'``; the budget ladder raises
    ``steps`` (study: 100..600).

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
        """Each step differentiates every candidate class but the label (all classes by default)."""
        candidates = rung_setting(cls, rung, "candidates") or n_classes
        return int(rung_setting(cls, rung, "steps")) * (min(int(candidates), n_classes) - 1), 0

    targeted = False
    black_box = False
    rung_limits = {"steps": AT_LEAST_ONE, "candidates": Limit(lo=2, hi=MAX_COUNT), "overshoot": NON_NEGATIVE}

    def __init__(self, *, steps: int = 100, candidates: int | None = None, overshoot: float = 0.02) -> None:
        super().__init__(steps=steps, candidates=candidates, overshoot=overshoot, loss="logits")

    def run(self, model: fb.Model, inputs: Any, criterion: Any, *, early_stop: float | None = None,
            **kwargs: Any) -> Any:
        """Attack ``inputs`` (untargeted; ``criterion`` is ``Misclassification`` or the labels).

        Raises
        ------
        ValueError
            On unknown kwargs, inputs outside ``model.bounds`` or a targeted criterion.
        """
        raise_if_kwargs(kwargs)
        x0_ep, restore_type = ep.astensor_(inputs)
        verify_input_bounds(x0_ep, model)
        labels, targeted = criterion_classes(criterion)
        if targeted:
            raise ValueError("deepfool is untargeted; pass foolbox.criteria.Misclassification")
        x = deepfool(raw_model(model), x0_ep.raw, labels, steps=self.steps, candidates=self.candidates,
                     overshoot=self.overshoot, bounds=tuple(model.bounds))
        return restore_type(ep.astensor(x))
