"""Small helpers shared by the attacks written here against foolbox 3's interfaces,
:class:`AttackInterface`, the declarative call interface every registered attack carries, and
:func:`check_rung`, which checks a ladder rung against it (starting pools: :mod:`advaudio.attacks.pool`)."""

from __future__ import annotations

import inspect
import math
import reprlib
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

import eagerpy as ep
import foolbox as fb
import torch
from foolbox.attacks.base import raise_if_kwargs, verify_input_bounds

from advaudio.errors import ConfigError


@dataclass(frozen=True)
class Limit:
    """The allowed values of one rung setting: a number in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``; None
    means unbounded), an even one if ``even``, or one of ``choices``. The type comes from the constructor's
    annotation, not from here."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    even: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """The allowed set in words for error messages (``"in (0.0, inf]"``), empty when anything goes."""
        if self.choices:
            return f"one of {list(self.choices)}"
        if self.lo is None and self.hi is None:
            return ""
        interval = (f"{'(' if self.lo_open else '['}{'-inf' if self.lo is None else self.lo}, "
                    f"{'inf' if self.hi is None else self.hi}]")
        return f"in {interval}{' and even' if self.even else ''}"

    def allows(self, value: Any) -> bool:
        """Whether ``value`` (already of the right type) lies in the allowed set."""
        if self.choices:
            return value in self.choices
        if isinstance(value, bool):
            return True
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        if self.hi is not None and value > self.hi:
            return False
        return not (self.even and value % 2)


# Upper ends are far beyond any sensible budget (the study's largest: CW's 1000 steps, PIA's 10^4 queries per
# victim), but they stop a typo from asking for 10^12 iterations or 2*10^9 samples per step.
MAX_COUNT = 1_000_000
MAX_SCALE = 1e6  # step sizes, radii, CW's c: perturbations of inputs in [0, 1] need nothing near this

ANY = Limit()
POSITIVE = Limit(lo=0.0, lo_open=True, hi=MAX_SCALE)
NON_NEGATIVE = Limit(lo=0.0, hi=MAX_SCALE)
AT_LEAST_ONE = Limit(lo=1, hi=MAX_COUNT)
FRACTION = Limit(lo=0.0, hi=1.0, lo_open=True)


class AttackInterface:
    """How a caller drives a registered attack, declared on the class (a mixin listed before the foolbox base).

    Attributes
    ----------
    targeted : bool
        Built for ``TargetedMisclassification`` (True) or ``Misclassification`` (False).
    black_box : bool
        Sees the model only through a query oracle; its cost is counted in queries, not gradients.
    seeded : bool
        Draws random numbers from a ``seed`` constructor argument, which the caller sets (never a ladder rung):
        the budget search gives each rung its own (:mod:`advaudio.evaluation.budget`).
    call_kwargs : tuple of str
        The extra keyword arguments its ``run`` accepts from a caller (beyond ``epsilon`` and foolbox's
        ``early_stop``); a caller passes exactly these.
    rung_limits : dict of str to Limit
        The allowed values of every constructor keyword a ladder rung may set (:func:`check_rung`); a test
        keeps its keys equal to the constructor's parameters.
    epsilon_limit : Limit
        The allowed values of a rung's ``epsilon`` (fixed-epsilon attacks only).
    reference : bool
        A reference attack beside the study's (APGD): run and reported like the others, but left out of the
        study's tables and means over attacks.
    """

    targeted: bool
    black_box: bool = False
    seeded: bool = False
    reference: bool = False
    call_kwargs: tuple[str, ...] = ()
    rung_limits: dict[str, Limit] = {}
    epsilon_limit: Limit = POSITIVE

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


def cap_epsilon_at_bound(rung: dict[str, Any], *, bound: float, n_features: int) -> dict[str, Any]:
    """``rung`` with ``epsilon = min(epsilon, bound)``, the :meth:`AttackInterface.bounded` of the fixed-epsilon
    L2 attacks (BIM, APGD): their output is then inside the ball by construction.

    A rung without ``epsilon`` is returned unchanged, for the caller to reject.

    Raises
    ------
    ValueError
        From :func:`check_bound`.
    """
    check_bound(bound, n_features)
    if "epsilon" not in rung:
        return dict(rung)
    return {**rung, "epsilon": min(float(rung["epsilon"]), float(bound))}


def project_l2_ball(x0: torch.Tensor, x: torch.Tensor, epsilon: float, bounds: tuple[float, float]) -> torch.Tensor:
    """``x`` moved onto the L2 ball of radius ``epsilon`` around ``x0`` (rows outside it only), then clipped to
    ``bounds``: the projection of L2 BIM and APGD."""
    delta = x - x0
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    factor = torch.clamp(epsilon / norms, max=1.0).view(-1, *[1] * (x.dim() - 1))
    return (x0 + delta * factor).clamp(*bounds)


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


def rung_settings(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor parameters of attack class ``cls`` that a ladder rung may set: all of them but ``seed``
    of a seeded attack, which the budget search sets (:mod:`advaudio.evaluation.budget`)."""
    params = dict(inspect.signature(cls).parameters)
    if cls.seeded:
        params.pop("seed", None)
    return params


def check_rung(cls: type, rung: Any, *, key: str) -> None:
    """Check one ladder rung of attack class ``cls`` before anything runs.

    A rung may set the constructor's keyword parameters (:func:`rung_settings`), each of the type its
    annotation gives (an integer is not a bool, a float is finite) and within ``cls.rung_limits``; a
    fixed-epsilon attack's rung also needs ``epsilon`` within ``cls.epsilon_limit``, and a minimisation
    attack's rung must not have one.

    Parameters
    ----------
    cls : type
        A registered attack class.
    rung : dict
        Constructor kwargs, plus ``epsilon`` for fixed-epsilon attacks (one rung of ``attack.ladders``).
    key : str
        The rung's name in messages, e.g. ``attack.ladders.bim_a[0]``.

    Raises
    ------
    ConfigError
        Naming ``<key>.<setting>``, the value and what is expected.
    """
    if not isinstance(rung, dict):
        raise ConfigError(f"{key} = {reprlib.repr(rung)}; expected a mapping of settings")
    settings = rung_settings(cls)
    fixed = issubclass(cls, fb.attacks.base.FixedEpsilonAttack)
    allowed = sorted(settings) + (["epsilon"] if fixed else [])
    unknown = sorted(str(k) for k in set(rung) - set(allowed))
    if unknown:
        why = {"epsilon": " (this attack minimises the perturbation: it takes no 'epsilon')",
               "seed": " (the budget search seeds each rung from the params' seed)"}
        notes = "".join(why.get(k, "") for k in unknown)
        raise ConfigError(f"{key} has unknown setting(s) {unknown}{notes}; allowed: {allowed}")
    if fixed and "epsilon" not in rung:
        raise ConfigError(f"{key} needs an 'epsilon' (the attack's fixed budget): "
                          f"{_type_words(float)} {cls.epsilon_limit.describe()}")
    hints = typing.get_type_hints(cls.__init__)
    for name, value in rung.items():
        tp, limit = (float, cls.epsilon_limit) if name == "epsilon" else (hints[name], cls.rung_limits[name])
        if not (_has_type(value, tp) and (value is None or limit.allows(value))):
            expected = limit.describe() if limit.choices else f"{_type_words(tp)} {limit.describe()}".rstrip()
            raise ConfigError(f"{key}.{name} = {reprlib.repr(value)}; expected {expected}")


def _has_type(value: Any, tp: Any) -> bool:
    """``value`` is of annotation ``tp``: bool, int (not bool), float (finite; an int will do), str or ``X | None``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return any(_has_type(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        try:
            return math.isfinite(value)
        except OverflowError:  # an integer beyond any float
            return False
    if tp is str:
        return isinstance(value, str)
    raise TypeError(f"rung settings of type {tp!r} are not supported")  # a new attack parameter type: extend this


def _type_words(tp: Any) -> str:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return " or ".join(_type_words(t) for t in typing.get_args(tp))
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
            type(None): "null"}[tp]


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
