"""Budget search (PROTOCOL "Budget search"): climb an attack's ladder until the fooling rate is reached.

Each rung is a dict of the attack's constructor kwargs, plus ``epsilon`` for fixed-epsilon attacks. Only
victims not yet fooled are attacked on the next rung, so each victim's recorded adversarial is the one of
the smallest rung that fooled it. Success is always verified by re-classifying the clipped adversarial.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import foolbox as fb
import numpy as np
import torch

from advaudio.attacks import ATTACKS
from advaudio.evaluation.counting import CountingModule
from advaudio.errors import ConfigError
from advaudio.evaluation.verify import verify_adversarials


@dataclass
class BudgetResult:
    """What one attack needed: per-victim verified results and the cost of the search."""

    name: str
    adv: np.ndarray  # (N, 1, H, W) float32; the input itself where the attack failed
    l2: np.ndarray  # (N,) smallest successful ||delta||_2, inf where failed
    success: np.ndarray  # (N,) bool, verified by re-classification
    level: int  # 1-based rung reached (the last one run)
    n_levels: int
    gradient_calls: int  # per-sample gradient evaluations (white box)
    queries: int  # per-sample oracle queries (black box)
    seconds: float
    fr_per_level: list[float] = field(default_factory=list)

    @property
    def fooling_rate(self) -> float:
        """Share of victims fooled (verified)."""
        return float(self.success.mean()) if len(self.success) else 0.0


def budget_search(
    *,
    name: str,
    model: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    ladder: list[dict[str, Any]],
    target_fooling_rate: float,
    batch_size: int,
    bound: float | None = None,
    starting_pool: torch.Tensor | None = None,
    seed: int = 0,
) -> BudgetResult:
    """Run attack ``name`` up its budget ladder on the victims ``x``.

    Parameters
    ----------
    name : str
        A key of :data:`advaudio.attacks.ATTACKS`.
    model : torch.nn.Module
        Victim in eval mode, returning logits; inputs in [0, 1].
    x, labels, targets : torch.Tensor
        Victims ``(N, 1, H, W)`` on the model's device, their labels and targets ``(N,)``.
    ladder : list of dict
        Rungs, climbed in order (``epsilon`` goes to the call, the rest to the constructor).
    target_fooling_rate : float
        Stop once the verified fooling rate reaches it.
    batch_size : int
        Victims per attack call.
    bound : float, optional
        If given, every adversarial is projected onto the L2 ball of this radius before verification
        (``attack_bounded``), and L2 fixed-epsilon attacks use ``min(epsilon, bound)``.
    starting_pool : torch.Tensor, optional
        Candidate start images for black-box attacks that start from the target class (``pia``).
    seed : int
        Seed for attacks that draw random numbers (offset by the rung index).

    Raises
    ------
    ConfigError
        On an empty ladder, a rung with unknown keys, or a fixed-epsilon rung without ``epsilon``.
    """
    cls = ATTACKS.get(name)
    if not ladder:
        raise ConfigError(f"attack.ladders.{name} is empty; give at least one rung")
    counting = CountingModule(model)
    fmodel = fb.PyTorchModel(counting, bounds=(0, 1), device=x.device)
    n = len(x)
    adv = x.detach().clone()
    l2 = torch.full((n,), float("inf"), device=x.device)
    success = torch.zeros(n, dtype=torch.bool, device=x.device)
    queries, fr_per_level, level = 0, [], 0
    start = time.perf_counter()
    for level, rung in enumerate(ladder, start=1):
        attack, epsilon = _build(cls, name, rung, level, seed, bound)
        todo = torch.nonzero(~success, as_tuple=True)[0]
        for i in range(0, len(todo), batch_size):
            idx = todo[i : i + batch_size]
            classes = targets[idx] if cls.targeted else labels[idx]
            criterion = (fb.criteria.TargetedMisclassification if cls.targeted else fb.criteria.Misclassification)(classes)
            extra = {"starting_pool": starting_pool} if name == "pia" else {}
            _, clipped, _ = attack(fmodel, x[idx], criterion, epsilons=epsilon, **extra)
            if bound is not None:
                clipped = fb.distances.l2.clip_perturbation(x[idx], clipped, bound)
            ok, norms = verify_adversarials(
                model=model, x=x[idx], adv=clipped, labels=labels[idx], targets=targets[idx] if cls.targeted else None
            )
            adv[idx[ok]] = clipped[ok]
            l2[idx[ok]] = norms[ok]
            success[idx[ok]] = True
        queries += getattr(attack, "queries", 0)
        fr_per_level.append(float(success.float().mean()))
        if fr_per_level[-1] >= target_fooling_rate:
            break
    seconds = time.perf_counter() - start
    return BudgetResult(
        name=name,
        adv=adv.cpu().numpy().astype(np.float32),
        l2=l2.cpu().numpy().astype(np.float64),
        success=success.cpu().numpy(),
        level=level,
        n_levels=len(ladder),
        gradient_calls=0 if cls.black_box else counting.gradient_samples,
        queries=queries,
        seconds=seconds,
        fr_per_level=fr_per_level,
    )


def _build(cls: type, name: str, rung: dict[str, Any], level: int, seed: int, bound: float | None):
    kwargs = dict(rung)
    epsilon = kwargs.pop("epsilon", None)
    fixed = issubclass(cls, fb.attacks.base.FixedEpsilonAttack)
    if fixed and epsilon is None:
        raise ConfigError(f"attack.ladders.{name} rung {level} needs an 'epsilon' (fixed-epsilon attack)")
    if not fixed and epsilon is not None:
        raise ConfigError(f"attack.ladders.{name} rung {level} has 'epsilon' but {name} minimises the perturbation")
    if getattr(cls, "seeded", False):
        kwargs["seed"] = seed + level
    try:
        attack = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"attack.ladders.{name} rung {level} {rung!r}: {exc}") from None
    if fixed and bound is not None and cls.distance is fb.distances.l2:
        epsilon = min(float(epsilon), bound)
    return attack, (float(epsilon) if fixed else None)
