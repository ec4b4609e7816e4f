"""The attack suite: every attack is a foolbox 3 attack, registered in :data:`ATTACKS` by name.

All attacks are called the same way (foolbox's convention)::

    attack = ATTACKS.get("bim_b")(steps=20)                # ladder rung = constructor kwargs
    raw, clipped, success = attack(fmodel, x, criterion, epsilons=eps)

``fmodel`` is a ``foolbox.PyTorchModel`` with bounds (0, 1); ``criterion`` is
``foolbox.criteria.Misclassification`` (untargeted) or ``TargetedMisclassification``. Each registered
class carries ``targeted`` (which criterion it is built for) and ``black_box`` (sees only a query oracle).
Fixed-epsilon attacks (``bim_a``, ``bim_b``, ``pia``, ``fgsm``) take the rung's ``epsilon`` as the call's
``epsilons``; minimisation attacks (``jsma``, ``deepfool``, ``cw``) are called with ``epsilons=None``.
"""

from __future__ import annotations

from advaudio.registry import Registry

ATTACKS: Registry = Registry("attack")

# Importing the modules fills the registry (decorators run at import time).
from advaudio.attacks import bim, cw, deepfool, fgsm, jsma, pia  # noqa: E402,F401

__all__ = ["ATTACKS"]
