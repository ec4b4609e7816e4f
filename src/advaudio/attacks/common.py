"""Small helpers shared by the attacks written here against foolbox 3's interfaces."""

from __future__ import annotations

import eagerpy as ep
import foolbox as fb
import torch


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


def is_adversarial(logits: torch.Tensor, classes: torch.Tensor, *, targeted: bool) -> torch.Tensor:
    """Per-sample success from logits: top-1 equals the target (targeted) or differs from the label."""
    pred = logits.argmax(dim=-1)
    return pred == classes if targeted else pred != classes


def raw_model(model: fb.Model):
    """Call a foolbox model on raw torch tensors (autograd on iff the input requires grad)."""

    def call(x: torch.Tensor) -> torch.Tensor:
        return model(ep.astensor(x)).raw

    return call
