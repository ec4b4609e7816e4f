"""Small helpers shared by the attacks written here against foolbox 3's interfaces."""

from __future__ import annotations

from typing import Any, Callable

import eagerpy as ep
import foolbox as fb
import torch
from foolbox.attacks.base import raise_if_kwargs, verify_input_bounds


def criterion_classes(criterion: object) -> tuple[torch.Tensor, bool]:
    """Return ``(classes, targeted)`` of a foolbox criterion as a raw torch tensor.

    ``classes`` are the true labels for ``Misclassification`` and the targets for
    ``TargetedMisclassification``; a bare tensor of labels means ``Misclassification``.

    Raises
    ------
    ValueError
        For any other criterion.
    """
    criterion = fb.attacks.base.get_criterion(criterion)
    if isinstance(criterion, fb.criteria.Misclassification):
        return ep.astensor(criterion.labels).raw, False
    if isinstance(criterion, fb.criteria.TargetedMisclassification):
        return ep.astensor(criterion.target_classes).raw, True
    raise ValueError(f"unsupported criterion {criterion!r}; expected Misclassification or TargetedMisclassification")


def targeted_run_inputs(
    name: str, model: fb.Model, inputs: Any, criterion: object, kwargs: dict[str, Any]
) -> tuple[ep.Tensor, Callable[[ep.Tensor], Any], torch.Tensor]:
    """The common prologue of a targeted foolbox ``run``: reject stray kwargs, check the input bounds and
    return ``(inputs as eagerpy, restore_type, target classes)``.

    Raises
    ------
    ValueError
        Unknown kwargs, inputs outside ``model.bounds``, or a criterion other than
        ``TargetedMisclassification`` (the message names the attack ``name``).
    """
    raise_if_kwargs(kwargs)
    x0_ep, restore_type = ep.astensor_(inputs)
    verify_input_bounds(x0_ep, model)
    targets, targeted = criterion_classes(criterion)
    if not targeted:
        raise ValueError(f"{name} is targeted; pass foolbox.criteria.TargetedMisclassification")
    return x0_ep, restore_type, targets


def is_adversarial(logits: torch.Tensor, classes: torch.Tensor, *, targeted: bool) -> torch.Tensor:
    """Per-sample success from logits: top-1 equals the target (targeted) or differs from the label."""
    pred = logits.argmax(dim=-1)
    return pred == classes if targeted else pred != classes


def raw_model(model: fb.Model):
    """Call a foolbox model on raw torch tensors (autograd on iff the input requires grad)."""

    def call(x: torch.Tensor) -> torch.Tensor:
        return model(ep.astensor(x)).raw

    return call
