"""The four attack stages: which checkpoint each attacks and whether it applies the L2 bound.

``clean`` attacks the original model and draws the victims; ``clean_bounded`` attacks the original model
within ``attack.bound`` (the Table II comparison point, the same attack as ``bounded``); ``bounded`` and
``unbounded`` attack the FGSM-retrained model. Every mode but ``clean`` reuses ``clean``'s victims.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttackMode:
    """How one attack stage runs."""

    checkpoint: str  # file under build/model
    bounded: bool  # project every adversarial onto the L2 ball of radius attack.bound
    draws_victims: bool


MODES: dict[str, AttackMode] = {
    "clean": AttackMode(checkpoint="model.pt", bounded=False, draws_victims=True),
    "clean_bounded": AttackMode(checkpoint="model.pt", bounded=True, draws_victims=False),
    "bounded": AttackMode(checkpoint="retrained.pt", bounded=True, draws_victims=False),
    "unbounded": AttackMode(checkpoint="retrained.pt", bounded=False, draws_victims=False),
}
