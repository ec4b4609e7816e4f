"""Budget search (docs/PROTOCOL.md "Budget search"): climb an attack's ladder until the fooling rate is reached.

Each rung is a dict of the attack's constructor kwargs, plus ``epsilon`` for fixed-epsilon attacks. Only
victims not yet fooled are attacked on the next rung, so each victim's recorded adversarial is the one of
the smallest rung that fooled it. Success is always verified by re-classifying the adversarial; the cost is
counted on the model (:class:`~advaudio.evaluation.counting.CountingModule`), never taken from the attack.

The search calls each attack as foolbox does (``attack(fmodel, x, criterion, epsilons=...)``, which also clips
a fixed-epsilon attack's perturbation to its epsilon) and knows the attacks only through their declared
interface (:class:`advaudio.attacks.common.AttackInterface`): ``targeted``, ``black_box``, ``seeded`` (takes
a ``seed``, which the search sets), ``call_kwargs`` (extra arguments the search supplies: ``starting_pool``,
``stats``) and ``bounded`` (the rung to run when every adversarial must lie in the L2 ball).
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
    l2: np.ndarray  # (N,) ||delta||_2 of the adversarial kept (the first rung's that fooled), inf where failed
    success: np.ndarray  # (N,) bool, verified by re-classification
    level: int  # 1-based rung reached (the last one run)
    n_levels: int
    gradient_calls: int  # samples differentiated through the model (counted by hooks, every attack)
    forward_calls: int  # samples passed forward through the model (every attack; success checks included)
    queries: int  # samples the attack says it queried (attacks with a ``stats`` call kwarg; else 0)
    seconds: float
    black_box: bool = False
    raw_nonfinite: int = 0  # attack outputs (all rungs) holding NaN or inf
    raw_out_of_range: int = 0  # attack outputs (all rungs) outside [0, 1]
    fr_per_level: list[float] = field(default_factory=list)
    success_checks: int = 0  # samples foolbox's call classified to report success (one per victim per call)

    @property
    def fooling_rate(self) -> float:
        """Share of victims fooled (verified)."""
        return float(self.success.mean()) if len(self.success) else 0.0


@dataclass
class SearchState:
    """Where a budget search stands after a rung: a resume point (:mod:`advaudio.evaluation.search_state`).

    ``result`` is what the search has found so far; ``finished`` says whether it ends there; ``pool_top1``
    holds the starting pool's ``(P,)`` classes once the model was asked for them, so that a resumed search
    reuses them instead of classifying the pool again.
    """

    result: BudgetResult
    finished: bool
    pool_top1: np.ndarray | None = None


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
    resume: SearchState | None = None,
    on_rung: Callable[[SearchState], None] | None = None,
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
        Rungs, climbed in order (``epsilon`` goes to the call as foolbox's ``epsilons``, the rest to the
        constructor).
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
        Seed of a ``seeded`` attack (offset by the rung index).
    resume : SearchState, optional
        The state saved after a rung of an interrupted search of the same attack on the same inputs: a
        finished one is returned as it is, an unfinished one goes on at the next rung with its adversarials,
        counters and time. Every rung's randomness depends only on ``seed`` and the rung, so a resumed search
        gives the uninterrupted one's results.
    on_rung : callable, optional
        Called with the state after every rung, e.g. to save it.
    amp : bool
        Run the attacks under bf16 autocast on CUDA (:mod:`advaudio.evaluation.precision`); verification is
        float32 either way.

    Raises
    ------
    ConfigError
        On an empty ladder, a rung with unknown keys, a fixed-epsilon rung without ``epsilon``, or a ``resume``
        state of another search.
    """
    cls = ATTACKS.get(name)
    if not ladder:
        raise ConfigError(f"attack.ladders.{name} is empty; give at least one rung")
    if resume is not None and resume.finished:
        _check_resume(resume.result, name=name, n=len(x), n_levels=len(ladder))
        return resume.result
    search = _Search(cls, name=name, model=model, x=x, labels=labels, targets=targets, n_levels=len(ladder),
                     batch_size=batch_size, bound=bound, amp=amp, starting_pool=starting_pool, resume=resume)
    forms = [cls.bounded(dict(r), bound=bound, n_features=x[0].numel()) if bound is not None else dict(r)
             for r in ladder]
    for level, rung in enumerate(forms, start=1):
        if level <= search.level:
            continue  # run before the interruption
        if _repeats_earlier_rung(forms, level):
            search.repeat_rung()  # the same settings again (bounded stages cap several rungs alike): nothing to run
        else:
            search.run_rung(*_build(cls, name, rung, level, seed))
        reached = search.fr_per_level[-1] >= target_fooling_rate
        if on_rung is not None:
            on_rung(search.state(finished=reached or level == len(ladder)))
        if reached:
            break
    return search.result()


class _Search:
    """The running state of one budget search and its steps: one rung, one batch of victims."""

    def __init__(self, cls: type, *, name: str, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor,
                 targets: torch.Tensor, n_levels: int, batch_size: int, bound: float | None, amp: bool,
                 starting_pool: torch.Tensor | PoolSource | None, resume: SearchState | None) -> None:
        self.cls, self.name, self.model, self.n_levels = cls, name, model, n_levels
        self.x, self.labels, self.targets = x, labels, targets
        self.batch_size, self.bound, self.amp = batch_size, bound, amp
        self.counting = CountingModule(model)
        self.fmodel = fb.PyTorchModel(self.counting, bounds=(0, 1), device=x.device)
        self.adv = x.detach().clone()
        self.l2 = torch.full((len(x),), float("inf"), dtype=torch.float64)
        self.success = torch.zeros(len(x), dtype=torch.bool)
        self.stats: dict[str, int] = {}
        self.raw = {"nonfinite": 0, "out_of_range": 0}
        self.fr_per_level: list[float] = []
        self.level, self.elapsed, self.success_checks = 0, 0.0, 0
        pool_top1 = None
        if resume is not None:
            pool_top1 = self._restore(resume)
        self.start = time.perf_counter()
        # the pool is classified once per search (the first rung that needs it), not once per rung or batch
        self.pool = StartingPool(starting_pool, top1=pool_top1) if starting_pool is not None else None

    def _restore(self, resume: SearchState) -> torch.Tensor | None:
        """Take over a saved state; returns the starting pool's saved classes."""
        r = resume.result
        _check_resume(r, name=self.name, n=len(self.x), n_levels=self.n_levels)
        self.adv = torch.from_numpy(r.adv).to(self.x.device)
        self.l2, self.success = torch.from_numpy(r.l2.copy()), torch.from_numpy(r.success.copy())
        self.counting.gradient_samples, self.counting.forward_samples = r.gradient_calls, r.forward_calls
        if r.queries:
            self.stats["queries"] = r.queries
        self.raw = {"nonfinite": r.raw_nonfinite, "out_of_range": r.raw_out_of_range}
        self.fr_per_level, self.level, self.elapsed = list(r.fr_per_level), r.level, r.seconds
        self.success_checks = r.success_checks
        return None if resume.pool_top1 is None else torch.from_numpy(resume.pool_top1.astype(np.int64))

    def repeat_rung(self) -> None:
        """A rung equal to an earlier one: no budget to add, the fooling rate stays."""
        self.level += 1
        self.fr_per_level.append(self.fr_per_level[-1])

    def run_rung(self, attack: Any, epsilon: float | None) -> None:
        """Attack every victim not fooled yet, batch by batch, keeping the verified adversarials."""
        self.level += 1
        extra = {k: {"starting_pool": self.pool, "stats": self.stats}[k] for k in self.cls.call_kwargs}
        todo = torch.nonzero(~self.success, as_tuple=True)[0]
        for i in range(0, len(todo), self.batch_size):
            self._attack_batch(attack, epsilon, todo[i : i + self.batch_size], extra)
        self.fr_per_level.append(float(self.success.float().mean()))

    def _attack_batch(self, attack: Any, epsilon: float | None, idx: torch.Tensor, extra: dict[str, Any]) -> None:
        idx_d = idx.to(self.x.device)
        xb, labels = self.x[idx_d], self.labels[idx_d]
        targets = self.targets[idx_d] if self.cls.targeted else None
        criterion = (fb.criteria.TargetedMisclassification(targets) if self.cls.targeted
                     else fb.criteria.Misclassification(labels))
        with attack_autocast(self.x.device, enabled=self.amp):
            # foolbox's own call: runs the attack, clips a fixed-epsilon attack's perturbation to epsilon
            _, out, _ = attack(self.fmodel, xb, criterion, epsilons=epsilon, **extra)
        self.success_checks += len(xb)  # foolbox classifies its output once to report success
        out = out.float()
        self._count_raw(out)
        if self.bound is not None:
            out = project_l2(xb, out, self.bound)
        ok, norms = verify_adversarials(model=self.model, x=xb, adv=out, labels=labels, targets=targets,
                                        bound=self.bound)
        self.adv[idx_d[ok.to(self.x.device)]] = out[ok.to(self.x.device)].detach()
        self.l2[idx[ok]] = norms[ok]
        self.success[idx[ok]] = True

    def _count_raw(self, out: torch.Tensor) -> None:
        flat = out.detach().flatten(1)
        finite = torch.isfinite(flat).all(dim=1)
        self.raw["nonfinite"] += int((~finite).sum())
        outside = (flat.min(dim=1).values < 0) | (flat.max(dim=1).values > 1)
        self.raw["out_of_range"] += int((finite & outside).sum())

    def result(self) -> BudgetResult:
        """What the search has found so far."""
        return BudgetResult(
            name=self.name, adv=self.adv.cpu().numpy().astype(np.float32), l2=self.l2.numpy().copy(),
            success=self.success.numpy().copy(), level=self.level, n_levels=self.n_levels,
            gradient_calls=self.counting.gradient_samples, forward_calls=self.counting.forward_samples,
            queries=int(self.stats.get("queries", 0)), seconds=self.elapsed + time.perf_counter() - self.start,
            black_box=bool(self.cls.black_box), raw_nonfinite=self.raw["nonfinite"],
            raw_out_of_range=self.raw["out_of_range"], fr_per_level=list(self.fr_per_level),
            success_checks=self.success_checks,
        )

    def state(self, *, finished: bool) -> SearchState:
        """The resume point after the current rung."""
        classes = None if self.pool is None or self.pool.classes is None else self.pool.classes
        return SearchState(result=self.result(), finished=finished,
                           pool_top1=None if classes is None else classes.cpu().numpy().astype(np.int64))


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
    if cls.seeded:
        kwargs["seed"] = seed + level
    try:
        attack = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"attack.ladders.{name} rung {level} {rung!r}: {exc}") from None
    return attack, (float(epsilon) if fixed else None)
