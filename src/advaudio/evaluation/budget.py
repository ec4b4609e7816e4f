"""Budget search (docs/PROTOCOL.md "Budget search"): climb an attack's ladder until the fooling rate is reached.

Each rung is a dict of the attack's constructor kwargs, plus ``epsilon`` for fixed-epsilon attacks. Only
victims not yet fooled are attacked on the next rung, so each victim's recorded adversarial is the one of
the smallest rung that fooled it. Success is always verified by re-classifying the adversarial; the cost is
counted on the model (:class:`~advaudio.evaluation.counting.CountingModule`), never taken from the attack.

The search knows the attacks only through their declared interface (:mod:`advaudio.attacks`): ``targeted``,
``black_box``, ``call_kwargs`` (extra arguments of ``run`` the search supplies: ``starting_pool``, ``stats``)
and ``bounded`` (the rung to run when every adversarial must lie in the L2 ball).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import foolbox as fb
import numpy as np
import torch

from advaudio.attacks import ATTACKS
from advaudio.attacks.pool import PoolSource, StartingPool
from advaudio.errors import ConfigError
from advaudio.evaluation.ball import project_l2
from advaudio.evaluation.counting import CountingModule
from advaudio.evaluation.precision import attack_autocast
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
    gradient_calls: int  # samples differentiated through the model (counted by hooks, every attack)
    forward_calls: int  # samples passed forward through the model (every attack)
    queries: int  # samples the attack says it queried (attacks with a ``stats`` call kwarg; else 0)
    seconds: float
    black_box: bool = False
    raw_nonfinite: int = 0  # raw attack outputs (all rungs) holding NaN or inf
    raw_out_of_range: int = 0  # raw attack outputs (all rungs) outside [0, 1]
    fr_per_level: list[float] = field(default_factory=list)
    finished: bool = True  # False for the state after a rung when the search goes on (resume point)
    pool_top1: np.ndarray | None = None  # (P,) the starting pool's classes, once asked (a resumed search reuses them)

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
    starting_pool: torch.Tensor | PoolSource | None = None,
    seed: int = 0,
    resume: BudgetResult | None = None,
    on_rung: Callable[[BudgetResult], None] | None = None,
    amp: bool = False,
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
        If given, each rung is first replaced by the attack's ``bounded`` form, every adversarial is
        projected onto the L2 ball of this radius and only adversarials within it count (bounded stages).
    starting_pool : torch.Tensor or PoolSource, optional
        Candidate start images, for attacks whose ``call_kwargs`` ask for it (black-box attacks that start
        from the target class): a tensor, or a :class:`~advaudio.attacks.pool.PoolSource` (e.g.
        :class:`~advaudio.evaluation.pool_source.ReaderPool` over the test split) that is streamed in
        batches and never held whole. The search classifies it once, for all its rungs
        (:class:`~advaudio.attacks.pool.StartingPool`); a resumed search reuses the saved classes.
    seed : int
        Seed for attacks that draw random numbers (offset by the rung index).
    resume : BudgetResult, optional
        The state saved after a rung of an interrupted search of the same attack on the same inputs: the
        search goes on at the next rung with its adversarials, counters and time. Every rung's randomness
        depends only on ``seed`` and the rung, so a resumed search gives the uninterrupted one's results.
    on_rung : callable, optional
        Called with the state after every rung (``finished`` tells whether the search ends there), e.g. to
        save it.
    amp : bool
        Run the attacks under bf16 autocast on CUDA (:mod:`advaudio.evaluation.precision`); verification is
        float32 either way.

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
    n, d = len(x), x[0].numel()
    adv = x.detach().clone()
    l2 = torch.full((n,), float("inf"), dtype=torch.float64)
    success = torch.zeros(n, dtype=torch.bool)
    stats: dict[str, int] = {}
    raw = {"nonfinite": 0, "out_of_range": 0}
    fr_per_level: list[float] = []
    done_levels, elapsed = 0, 0.0
    pool_top1 = None
    if resume is not None:
        if resume.finished:
            return resume
        _check_resume(resume, name=name, n=n, n_levels=len(ladder))
        adv = torch.from_numpy(resume.adv).to(x.device)
        l2, success = torch.from_numpy(resume.l2.copy()), torch.from_numpy(resume.success.copy())
        counting.gradient_samples, counting.forward_samples = resume.gradient_calls, resume.forward_calls
        if resume.queries:
            stats["queries"] = resume.queries
        raw = {"nonfinite": resume.raw_nonfinite, "out_of_range": resume.raw_out_of_range}
        fr_per_level, done_levels, elapsed = list(resume.fr_per_level), resume.level, resume.seconds
        if resume.pool_top1 is not None:
            pool_top1 = torch.from_numpy(resume.pool_top1.astype(np.int64))
    start = time.perf_counter()
    # the pool is classified once per search (the first rung that needs it), not once per rung or batch
    pool = StartingPool(starting_pool, top1=pool_top1) if starting_pool is not None else None

    def state(level: int, finished: bool) -> BudgetResult:
        return BudgetResult(
            name=name, adv=adv.cpu().numpy().astype(np.float32), l2=l2.numpy().copy(), success=success.numpy().copy(),
            level=level, n_levels=len(ladder), gradient_calls=counting.gradient_samples,
            forward_calls=counting.forward_samples, queries=int(stats.get("queries", 0)),
            seconds=elapsed + time.perf_counter() - start, black_box=bool(cls.black_box),
            raw_nonfinite=raw["nonfinite"], raw_out_of_range=raw["out_of_range"], fr_per_level=list(fr_per_level),
            finished=finished,
            pool_top1=None if pool is None or pool.classes is None else pool.classes.cpu().numpy().astype(np.int64),
        )

    level = done_levels
    forms = [cls.bounded(dict(r), bound=bound, n_features=d) if bound is not None else dict(r) for r in ladder]
    for level, rung in enumerate(forms, start=1):
        if level <= done_levels:
            continue
        if _repeats_earlier_rung(forms, level):
            # the same settings again (bounded stages cap several rungs to the same epsilon or goal): no budget
            # to add, nothing to run
            fr_per_level.append(fr_per_level[-1])
            if on_rung is not None:
                on_rung(state(level, finished=level == len(ladder)))
            continue
        attack, epsilon = _build(cls, name, rung, level, seed)
        extra = {k: {"starting_pool": pool, "stats": stats}[k] for k in cls.call_kwargs}
        todo = torch.nonzero(~success, as_tuple=True)[0]
        for i in range(0, len(todo), batch_size):
            idx = todo[i : i + batch_size]
            idx_d = idx.to(x.device)
            xb = x[idx_d]
            classes = targets[idx_d] if cls.targeted else labels[idx_d]
            criterion = (fb.criteria.TargetedMisclassification if cls.targeted else fb.criteria.Misclassification)(classes)
            with attack_autocast(x.device, enabled=amp):
                if epsilon is None:
                    out = attack.run(fmodel, xb, criterion, **extra)
                else:  # as foolbox's __call__ does for fixed-epsilon attacks
                    out = attack.run(fmodel, xb, criterion, epsilon=epsilon, **extra)
            out = out.float()
            if epsilon is not None:
                out = attack.distance.clip_perturbation(xb, out, epsilon)
            flat = out.detach().flatten(1)
            finite = torch.isfinite(flat).all(dim=1)
            raw["nonfinite"] += int((~finite).sum())
            raw["out_of_range"] += int((finite & ((flat.min(dim=1).values < 0) | (flat.max(dim=1).values > 1))).sum())
            if bound is not None:
                out = project_l2(xb, out, bound)
            ok, norms = verify_adversarials(
                model=model, x=xb, adv=out, labels=labels[idx_d], targets=targets[idx_d] if cls.targeted else None,
                bound=bound,
            )
            adv[idx_d[ok.to(x.device)]] = out[ok.to(x.device)].detach()
            l2[idx[ok]] = norms[ok]
            success[idx[ok]] = True
        fr_per_level.append(float(success.float().mean()))
        reached = fr_per_level[-1] >= target_fooling_rate
        if on_rung is not None:
            on_rung(state(level, finished=reached or level == len(ladder)))
        if reached:
            break
    return state(level, finished=True)


def _repeats_earlier_rung(forms: list[dict[str, Any]], level: int) -> bool:
    """Rung ``level`` (1-based) has the same settings as an earlier one.

    A deterministic attack would fail the same victims again. A seeded one (PIA) would only restart with
    another seed: the ladder climbs budgets, and a repeated rung adds none (bounded stages give every PIA rung
    the bound as its goal, which makes rungs that differ only in their goal identical), so it is skipped too.
    """
    return forms[level - 1] in forms[: level - 1]


def _check_resume(resume: BudgetResult, *, name: str, n: int, n_levels: int) -> None:
    if resume.name != name or len(resume.success) != n or resume.n_levels != n_levels or resume.level > n_levels:
        raise ConfigError(
            f"the saved state of {resume.name!r} (rung {resume.level}/{resume.n_levels}, {len(resume.success)} "
            f"victims) does not fit {name!r} ({n_levels} rungs, {n} victims); delete it and rerun"
        )


def _build(cls: type, name: str, rung: dict[str, Any], level: int, seed: int):
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
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"attack.ladders.{name} rung {level} {rung!r}: {exc}") from None
    return attack, (float(epsilon) if fixed else None)
