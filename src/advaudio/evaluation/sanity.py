"""The sanity checks of docs/PROTOCOL.md "Sanity checks" (Carlini et al. 2019, https://arxiv.org/abs/1902.06705; AutoAttack).

Each check returns True (pass) or False (fail); :func:`run_sanity_checks` gathers them as 1/0 for the
metrics file. A check that does not apply to a mode is left out, never reported as a pass. The checks on
the attacks read what the attacks produced (their raw outputs, counted by the budget search before any
verification replaces a failed row by its input) and the model's own counters, never the attack's word.
"""

from __future__ import annotations

from typing import Mapping

import foolbox as fb
import numpy as np
import torch
import torch.nn.functional as F

from advaudio.attacks import ATTACKS
from advaudio.evaluation.ball import within_bound
from advaudio.evaluation.budget import BudgetResult
from advaudio.evaluation.metrics import l2_norms, robustness_curve
from advaudio.evaluation.verify import verify_adversarials


def _batches(n: int, batch_size: int | None) -> list[slice]:
    size = batch_size or max(n, 1)
    return [slice(i, i + size) for i in range(0, n, size)]


def eval_and_deterministic(*, model: torch.nn.Module, x: torch.Tensor, batch_size: int | None = None) -> bool:
    """Every module is in eval mode and two forward passes give identical logits."""
    if any(m.training for m in model.modules()):
        return False
    with torch.no_grad():
        return all(bool(torch.equal(model(x[b]), model(x[b]))) for b in _batches(len(x), batch_size))


def outputs_are_logits(*, model: torch.nn.Module, x: torch.Tensor, batch_size: int | None = None) -> bool:
    """The model returns logits, not probabilities (rows inside [0, 1] summing to 1 fail)."""
    with torch.no_grad():
        out = torch.cat([model(x[b]) for b in _batches(len(x), batch_size)]).float()
    probs_like = bool((out >= 0).all() and (out <= 1).all()
                      and torch.allclose(out.sum(1), torch.ones(len(out), device=out.device), atol=1e-3))
    return not probs_like


def nonzero_input_gradients(*, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor,
                            batch_size: int | None = None) -> bool:
    """The cross-entropy has a non-zero, finite input gradient at every victim (no masked gradients)."""
    for b in _batches(len(x), batch_size):
        xg = x[b].detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xg), labels[b], reduction="sum"), xg)
        norms = g.flatten(1).norm(dim=1)
        if not bool(torch.isfinite(norms).all() and (norms > 0).all()):
            return False
    return True


def fixed_epsilon_rates(
    *, name: str, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, epsilons: list[float],
    batch_size: int | None = None, **kwargs
) -> list[float]:
    """Untargeted verified fooling rate of a fixed-epsilon attack at each epsilon (fresh runs, in batches)."""
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
    attack = ATTACKS.get(name)(**kwargs)
    rates = []
    for eps in epsilons:
        fooled = 0
        for b in _batches(len(x), batch_size):
            _, clipped, _ = attack(fmodel, x[b], fb.criteria.Misclassification(labels[b]), epsilons=eps)
            ok, _ = verify_adversarials(model=model, x=x[b], adv=clipped, labels=labels[b], targets=None)
            fooled += int(ok.sum())
        rates.append(fooled / max(len(x), 1))
    return rates


def fresh_bim_and_fgsm_rates(
    *, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, l2_epsilons: list[float], steps: int = 10,
    batch_size: int | None = None,
) -> tuple[list[float], list[float]]:
    """Untargeted verified fooling rates of L2 BIM-b and of FGSM at matching budgets (fresh runs).

    FGSM with L-inf budget e moves inside the L2 ball of radius e * sqrt(d), so FGSM runs at
    ``l2_epsilons / sqrt(d)`` and BIM-b at ``l2_epsilons``.
    """
    d = x[0].numel()
    bim = fixed_epsilon_rates(name="bim_b", model=model, x=x, labels=labels, epsilons=l2_epsilons, steps=steps,
                              rel_stepsize=2.5 / steps, batch_size=batch_size)
    fgsm = fixed_epsilon_rates(name="fgsm", model=model, x=x, labels=labels,
                               epsilons=[e / np.sqrt(d) for e in l2_epsilons], batch_size=batch_size)
    return bim, fgsm


def iterative_ge_fgsm(*, bim_rates: list[float], fgsm_rates: list[float]) -> bool:
    """The iterative attack fools at least as many victims as FGSM at every matched budget."""
    return all(b >= f for b, f in zip(bim_rates, fgsm_rates, strict=True))


def nondecreasing(rates: list[float]) -> bool:
    """Fooling rates of fresh runs at increasing epsilon never decrease."""
    return bool(np.all(np.diff(np.asarray(rates, dtype=np.float64)) >= 0))


def whitebox_ge_blackbox(*, curves: Mapping[str, np.ndarray], white: list[str], black: list[str]) -> bool:
    """At every epsilon of the curve grid, the best white-box attack fools at least as many victims as each
    black-box attack."""
    if not white or not black:
        return True
    best_white = np.max([curves[n] for n in white], axis=0)
    return all(bool(np.all(best_white >= curves[n])) for n in black)


def bounded_within_bound(*, x: np.ndarray, results: Mapping[str, BudgetResult], bound: float) -> bool:
    """Every successful adversarial of a bounded stage is within the bound, by its stored norm and by the
    norm recomputed from the stored adversarial."""
    for r in results.values():
        recomputed = l2_norms(x=x, adv=r.adv)
        if not (np.all(within_bound(r.l2[r.success], bound)) and np.all(within_bound(recomputed[r.success], bound))):
            return False
    return True


def raw_outputs_finite(results: Mapping[str, BudgetResult]) -> bool:
    """No attack returned NaN or inf for any victim on any rung."""
    return all(r.raw_nonfinite == 0 for r in results.values())


def raw_outputs_in_range(results: Mapping[str, BudgetResult]) -> bool:
    """No attack returned a value outside the input range [0, 1] on any rung."""
    return all(r.raw_out_of_range == 0 for r in results.values())


def no_zero_adversarials(*, x: np.ndarray, results: Mapping[str, BudgetResult]) -> bool:
    """No successful adversarial is the all-zero image (foolbox's marker of a failed row) unless the input was."""
    for r in results.values():
        zero = ~r.adv.reshape(len(x), -1).any(axis=1) & x.reshape(len(x), -1).any(axis=1)
        if (zero & r.success).any():
            return False
    return True


def blackbox_queries_only(results: Mapping[str, BudgetResult]) -> bool:
    """Each black-box attack differentiated through the model zero times, and the samples the model was asked
    about are the queries it reports plus foolbox's success checks of its outputs (one per victim per call)."""
    return all(r.gradient_calls == 0 and r.queries + r.success_checks == r.forward_calls
               for r in results.values() if r.black_box)


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
    batch_size: int | None = None,
) -> dict[str, int]:
    """Run every check that applies to the stage; return ``{check: 1 or 0}``.

    ``bounded``: the stage projected onto the L2 ball of radius ``bound`` (the ``bounded_within_bound``
    check applies and ``whitebox_reach_target`` does not). ``epsilons`` is the curve grid; the fresh-run
    checks use three points of it (10, 25, 50 % of its end).
    """
    xn = x.cpu().numpy()
    checks: dict[str, bool] = {
        "eval_deterministic": eval_and_deterministic(model=model, x=x, batch_size=batch_size),
        "logits_not_probabilities": outputs_are_logits(model=model, x=x, batch_size=batch_size),
        "nonzero_input_gradients": nonzero_input_gradients(model=model, x=x, labels=labels, batch_size=batch_size),
    }
    grid = [float(epsilons[-1]) * f for f in (0.1, 0.25, 0.5)]
    bim, fgsm = fresh_bim_and_fgsm_rates(model=model, x=x, labels=labels, l2_epsilons=grid, batch_size=batch_size)
    checks["fr_nondecreasing_in_eps"] = nondecreasing(bim)
    checks["iterative_ge_fgsm"] = iterative_ge_fgsm(bim_rates=bim, fgsm_rates=fgsm)
    curves = {n: robustness_curve(l2=r.l2, success=r.success, epsilons=epsilons) for n, r in results.items()}
    white = [n for n, r in results.items() if not r.black_box]
    black = [n for n, r in results.items() if r.black_box]
    if not bounded and white:
        checks["whitebox_reach_target"] = all(results[n].fooling_rate >= target_fooling_rate for n in white)
    if white and black:
        checks["whitebox_ge_blackbox"] = whitebox_ge_blackbox(curves=curves, white=white, black=black)
    if black:
        checks["blackbox_queries_only"] = blackbox_queries_only(results)
    if bounded:
        checks["bounded_within_bound"] = bounded_within_bound(x=xn, results=results, bound=bound)
    checks["adversarials_in_range"] = raw_outputs_in_range(results)
    checks["no_nan"] = raw_outputs_finite(results)
    checks["no_zero_adversarials"] = no_zero_adversarials(x=xn, results=results)
    return {k: int(v) for k, v in checks.items()}
