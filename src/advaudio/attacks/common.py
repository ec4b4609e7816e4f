"""Small helpers shared by the attacks written here against foolbox 3's interfaces, and
:class:`AttackInterface`, the declarative call interface every registered attack carries (starting pools:
:mod:`advaudio.attacks.pool`)."""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import eagerpy as ep
import foolbox as fb
import torch
from foolbox.attacks.base import raise_if_kwargs, verify_input_bounds


class AttackInterface:
    """How a caller drives a registered attack, declared on the class (a mixin listed before the foolbox base).

    Attributes
    ----------
    targeted : bool
        Built for ``TargetedMisclassification`` (True) or ``Misclassification`` (False).
    black_box : bool
        Sees the model only through a query oracle; its cost is counted in queries, not gradients.
    call_kwargs : tuple of str
        The extra keyword arguments its ``run`` accepts from a caller (beyond ``epsilon`` and foolbox's
        ``early_stop``); a caller passes exactly these.
    """

    targeted: bool
    black_box: bool = False
    call_kwargs: tuple[str, ...] = ()

    @classmethod
    def bounded(cls, rung: dict[str, Any], *, bound: float, n_features: int) -> dict[str, Any]:
        """The rung to run when every adversarial must satisfy ``||x_adv - x||_2 <= bound``.

        This default returns ``rung`` unchanged: it suits the minimisation attacks, whose output the caller
        projects onto the ball afterwards. Attacks that can honour the bound themselves override it.

        Parameters
        ----------
        rung : dict
            Constructor kwargs, plus ``epsilon`` for fixed-epsilon attacks (a rung of
            ``attack.ladders`` in params.yaml).
        bound : float
            Radius of the L2 ball around each input, in input units.
        n_features : int
            Number of input features d (elements of one sample).

        Returns
        -------
        dict
            A new rung in the same format.

        Raises
        ------
        ValueError
            On a non-positive or non-finite ``bound`` or ``n_features`` < 1.
        """
        check_bound(bound, n_features)
        return dict(rung)

    @classmethod
    def max_calls(cls, rung: dict[str, Any], *, n_classes: int, n_features: int) -> tuple[int, int]:
        """``(gradient passes, forward-only passes)`` one victim can cost on ``rung`` at most (the
        planner's upper bound, :mod:`advaudio.plan`); attacks that stop early use less."""
        raise NotImplementedError(f"{cls.__name__} does not declare its cost")


def check_bound(bound: float, n_features: int) -> None:
    """Validate the arguments of :meth:`AttackInterface.bounded`.

    Raises
    ------
    ValueError
        On a non-positive or non-finite ``bound`` or ``n_features`` < 1.
    """
    if not (math.isfinite(bound) and bound > 0):
        raise ValueError(f"bound = {bound!r}; expected a positive, finite L2 radius")
    if int(n_features) != n_features or n_features < 1:
        raise ValueError(f"n_features = {n_features!r}; expected a positive integer")


def rung_setting(cls: type, rung: dict[str, Any], name: str) -> Any:
    """``rung[name]``, or the default of the constructor parameter ``name`` of ``cls`` when absent."""
    if name in rung:
        return rung[name]
    return inspect.signature(cls).parameters[name].default


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
