"""The PROTOCOL's sanity checks (Carlini et al. 2019, https://arxiv.org/abs/1902.06705; AutoAttack).

Each check returns True (pass) or False (fail); :func:`run_sanity_checks` gathers them as 1/0 for the
metrics file. A check that does not apply to a mode is left out, never reported as a pass.
"""

from __future__ import annotations

from typing import Mapping

import foolbox as fb
import numpy as np
import torch
import torch.nn.functional as F

from advaudio.attacks import ATTACKS
from advaudio.evaluation.budget import BudgetResult
from advaudio.evaluation.metrics import robustness_curve
from advaudio.evaluation.verify import verify_adversarials


def eval_and_deterministic(*, model: torch.nn.Module, x: torch.Tensor) -> bool:
    """Every module is in eval mode and two forward passes give identical logits."""
    if any(m.training for m in model.modules()):
        return False
    with torch.no_grad():
        return bool(torch.equal(model(x), model(x)))


def outputs_are_logits(*, model: torch.nn.Module, x: torch.Tensor) -> bool:
    """The model returns logits, not probabilities (rows inside [0, 1] summing to 1 fail)."""
    with torch.no_grad():
        out = model(x)
    probs_like = bool((out >= 0).all() and (out <= 1).all() and torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-3))
    return not probs_like


def nonzero_input_gradients(*, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> bool:
    """The cross-entropy has a non-zero, finite input gradient at every victim (no masked gradients)."""
    xg = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(xg), labels, reduction="sum")
    (g,) = torch.autograd.grad(loss, xg)
    norms = g.flatten(1).norm(dim=1)
    return bool(torch.isfinite(norms).all() and (norms > 0).all())


def fixed_epsilon_rates(
    *, name: str, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, epsilons: list[float], **kwargs
) -> list[float]:
    """Untargeted verified fooling rate of a fixed-epsilon attack at each epsilon (fresh runs)."""
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
    attack = ATTACKS.get(name)(**kwargs)
    rates = []
    for eps in epsilons:
        _, clipped, _ = attack(fmodel, x, fb.criteria.Misclassification(labels), epsilons=eps)
        ok, _ = verify_adversarials(model=model, x=x, adv=clipped, labels=labels, targets=None)
        rates.append(float(ok.float().mean()))
    return rates


def iterative_vs_fgsm(
    *, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, l2_epsilons: list[float], steps: int = 10
) -> tuple[bool, bool]:
    """Return (BIM >= FGSM at every epsilon, BIM's FR non-decreasing in epsilon).

    FGSM with L-inf budget e moves inside the L2 ball of radius e * sqrt(d), so untargeted L2 BIM-b with
    that radius must fool at least as many victims.
    """
    d = x[0].numel()
    bim = fixed_epsilon_rates(name="bim_b", model=model, x=x, labels=labels, epsilons=l2_epsilons, steps=steps,
                              rel_stepsize=2.5 / steps)
    fgsm = fixed_epsilon_rates(name="fgsm", model=model, x=x, labels=labels,
                               epsilons=[e / np.sqrt(d) for e in l2_epsilons])
    return all(b >= f for b, f in zip(bim, fgsm)), bool(np.all(np.diff(bim) >= 0))


def run_sanity_checks(
    *,
    model: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    results: Mapping[str, BudgetResult],
    epsilons: np.ndarray,
    bounded: bool,
    bound: float,
    target_fooling_rate: float,
) -> dict[str, int]:
    """Run every PROTOCOL check that applies to the stage; return ``{check: 1 or 0}``.

    ``bounded``: the stage projected onto the L2 ball of radius ``bound`` (the ``bounded_within_bound``
    check applies and ``whitebox_reach_target`` does not). ``epsilons`` is the curve grid; the fresh-run
    checks use three points of it (10, 25, 50 % of its end).
    """
    checks: dict[str, bool] = {
        "eval_deterministic": eval_and_deterministic(model=model, x=x),
        "logits_not_probabilities": outputs_are_logits(model=model, x=x),
        "nonzero_input_gradients": nonzero_input_gradients(model=model, x=x, labels=labels),
    }
    grid = [float(epsilons[-1]) * f for f in (0.1, 0.25, 0.5)]
    ge_fgsm, monotone = iterative_vs_fgsm(model=model, x=x, labels=labels, l2_epsilons=grid)
    curves = {n: robustness_curve(l2=r.l2, success=r.success, epsilons=epsilons) for n, r in results.items()}
    checks["fr_nondecreasing_in_eps"] = monotone and all(bool(np.all(np.diff(c) >= 0)) for c in curves.values())
    checks["iterative_ge_fgsm"] = ge_fgsm
    white = [n for n in results if not ATTACKS.get(n).black_box]
    black = [n for n in results if ATTACKS.get(n).black_box]
    if not bounded and white:
        checks["whitebox_reach_target"] = all(results[n].fooling_rate >= target_fooling_rate for n in white)
    if white and black:
        best_white = np.max([curves[n] for n in white], axis=0)
        checks["whitebox_ge_blackbox"] = all(bool(np.all(best_white >= curves[n])) for n in black)
    if bounded:
        checks["bounded_within_bound"] = all(
            bool(np.all(r.l2[r.success] <= bound * (1 + 1e-5))) for r in results.values()
        )
    checks["adversarials_in_range"] = all(bool(r.adv.min() >= 0 and r.adv.max() <= 1) for r in results.values())
    checks["no_nan"] = all(not (np.isnan(r.adv).any() or np.isnan(r.l2).any()) for r in results.values())
    return {k: int(v) for k, v in checks.items()}
