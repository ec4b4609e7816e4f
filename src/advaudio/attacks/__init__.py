"""The attack suite: every attack is a foolbox 3 attack, registered in :data:`ATTACKS` by name.

All attacks are called the same way (foolbox's convention)::

    attack = ATTACKS.get("bim_b")(steps=20)                # ladder rung = constructor kwargs
    raw, clipped, success = attack(fmodel, x, criterion, epsilons=eps)

``fmodel`` is a ``foolbox.PyTorchModel`` with bounds (0, 1); ``criterion`` is
``foolbox.criteria.Misclassification`` (untargeted) or ``TargetedMisclassification``. Each registered
class declares how to call it (:class:`advaudio.attacks.common.AttackInterface`): ``targeted`` (which
criterion it is built for), ``black_box`` (sees only a query oracle), ``call_kwargs`` (the extra keyword
arguments its ``run`` takes from a caller, e.g. ``pia``'s ``starting_pool`` and ``stats``) and
``bounded(rung, bound=, n_features=)`` (the rung to run when every adversarial must lie in an L2 ball).
Fixed-epsilon attacks (``bim_a``, ``bim_b``, ``pia``, ``fgsm``) take the rung's ``epsilon`` as the call's
``epsilons``; minimisation attacks (``jsma``, ``deepfool``, ``cw``) are called with ``epsilons=None``.
Attacks keep no per-call state; ``bim_a`` and ``jsma`` have functional cores
(:func:`advaudio.attacks.bim.bim_a`, :func:`advaudio.attacks.jsma.jsma`) that also return step counts.
"""

from __future__ import annotations

from advaudio.registry import Registry

ATTACKS: Registry = Registry("attack")

# Importing the modules fills the registry (decorators run at import time).
from advaudio.attacks import apgd, bim, cw, deepfool, fgsm, jsma, pia  # noqa: E402,F401

__all__ = ["ATTACKS"]
