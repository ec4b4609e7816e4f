"""Partial-information attack (Ilyas et al. 2018, https://arxiv.org/abs/1804.08598), the study's black box.

The attack sees the victim only through :class:`TopKOracle`: a query function returning the top-k classes
and their probabilities, forward-only, in chunks, counting every queried sample. Gradients are estimated
with NES (Wierstra et al. 2014) using antithetic Gaussian samples. Targeted: it starts from an image the
oracle puts in the target class and alternates NES steps with shrinking the L-infinity radius around the
victim while the target stays in the top-k, until the radius reaches ``epsilon`` and the target is top-1.
A sample whose radius can no longer reach ``epsilon`` in the steps it has left (the radius falls by at most
the current decrease per step, and the decrease only ever halves) stops early; like every sample that did
not finish, its output is its last point projected onto the goal ball.
``norm="l2"`` runs the same algorithm with an L2 radius (the bounded attacks, whose bound is in L2).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import eagerpy as ep
import foolbox as fb
import torch

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import (AT_LEAST_ONE, POSITIVE, AttackInterface, Limit, check_bound, rung_setting,
                                     targeted_run_inputs)
from advaudio.attacks.pool import PoolSource, StartingPool

NORMS = ("linf", "l2")
HOPELESS_RTOL = 1e-6  # float slack when deciding that a row's radius can no longer reach the goal


class TopKOracle:
    """Black-box access to a classifier: top-k labels and probabilities, every queried sample counted.

    Parameters
    ----------
    predict : callable
        Maps a batch ``(b, 1, H, W)`` to logits ``(b, K)``; called under ``torch.no_grad``.
    k : int
        How many top classes are revealed.
    chunk : int
        Forward batch size (16-32 was fastest on CPU).
    """

    def __init__(self, *, predict: Callable[[torch.Tensor], torch.Tensor], k: int = 5, chunk: int = 32) -> None:
        self._predict = predict
        self.k = k
        self.chunk = chunk
        self.queries = 0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(classes, probabilities)``, both ``(b, k)``, sorted by decreasing probability."""
        self.queries += len(x)
        outs = []
        for start in range(0, len(x), self.chunk):
            xb = x[start : start + self.chunk].contiguous(memory_format=torch.channels_last)
            outs.append(torch.softmax(self._predict(xb).float(), dim=-1))
        probs = torch.cat(outs)
        p, c = probs.topk(min(self.k, probs.shape[1]), dim=1)
        return c, p


def target_log_prob(classes: torch.Tensor, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probability of each row's target from a top-k answer.

    A target outside the top-k gets the smallest revealed probability, an upper bound on its own.
    """
    hit = classes == targets[:, None]
    p = torch.where(hit.any(dim=1), (probs * hit).sum(dim=1), probs[:, -1])
    return torch.log(p.clamp_min(1e-30))


def nes_gradient(
    *,
    objective: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigma: float,
    n_samples: int,
    generator: torch.Generator,
    max_chunk_bytes: int = 1 << 28,
) -> torch.Tensor:
    """NES estimate of the gradient of ``objective`` at each row of ``x``, with antithetic samples.

    g = 1 / (n sigma) * sum_i [f(x + sigma u_i) - f(x - sigma u_i)] u_i over n/2 Gaussian u_i.

    Parameters
    ----------
    objective : callable
        ``objective(points, first_row)`` maps ``(m, ...)`` inputs, the samples of rows ``first_row,
        first_row + 1, ...`` of ``x`` in order (``n_samples`` each), to ``(m,)`` values.
    x : torch.Tensor
        Points, ``(b, ...)``.
    sigma : float
        Search standard deviation.
    n_samples : int
        Evaluations per point (even; half are the antithetic mirrors).
    generator : torch.Generator
        Seeded source of the samples, on ``x``'s device.
    max_chunk_bytes : int
        Most bytes of samples held at once; rows are processed in chunks that fit (at the study's sizes one
        row's 50 samples take 400 MB). The samples are drawn row by row, so they do not depend on it.

    Returns
    -------
    torch.Tensor
        Estimates, shaped like ``x``.
    """
    half = max(n_samples // 2, 1)
    b = len(x)
    per_row = 2 * half * x[0].numel() * x.element_size()  # bytes of one row's samples
    rows = max(1, max_chunk_bytes // max(per_row, 1))
    grads = []
    for start in range(0, b, rows):
        xc = x[start : start + rows]
        # one draw per row, in row order: the samples do not depend on the chunk size
        u = torch.cat([torch.randn((1, half, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
                       for _ in range(len(xc))])
        pts = torch.cat([xc[:, None] + sigma * u, xc[:, None] - sigma * u], dim=1)  # (rows, 2*half, ...)
        f = objective(pts.flatten(0, 1), start).view(len(xc), 2 * half)
        diff = (f[:, :half] - f[:, half:]).view(len(xc), half, *[1] * (x.dim() - 1))
        grads.append((diff * u).sum(dim=1) / (2 * half * sigma))
    return torch.cat(grads)


def pick_starting_points(
    *, oracle: TopKOracle, pool: StartingPool, targets: torch.Tensor, fallback: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each target, the first pool image the oracle labels as that target (top-1).

    The pool is classified through ``oracle`` only the first time it is asked, in forward batches of the
    oracle's chunk (:class:`~advaudio.attacks.pool.StartingPool`); only the picked images are fetched.

    Returns
    -------
    starts : torch.Tensor
        A new tensor shaped like ``fallback``: each row's start, ``fallback``'s row where none was found.
    found : torch.Tensor
        ``(b,)`` bool, whether the pool has an image of the row's target.
    """
    device = fallback.device
    top1 = pool.top1(lambda images: oracle(images)[0][:, 0], device, chunk=oracle.chunk)
    match = top1[None, :] == targets[:, None]  # (b, P)
    found = match.any(dim=1)
    first = match.float().argmax(dim=1)
    starts = fallback.clone()
    if found.any():
        starts[found] = pool.take(first[found], device).to(starts.dtype)
    return starts, found


def _pool_images(starting_pool: Any) -> torch.Tensor | PoolSource:
    """``starting_pool`` as :class:`~advaudio.attacks.pool.StartingPool` takes it: a source as is, anything
    else as a raw tensor (foolbox passes eagerpy tensors on)."""
    return starting_pool if isinstance(starting_pool, PoolSource) else ep.astensor(starting_pool).raw


def ball_sizes(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-row size of ``delta`` ``(b, ...)`` in ``norm`` ("linf" or "l2"), ``(b,)``."""
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


def project_to_ball(x0: torch.Tensor, z: torch.Tensor, radius: torch.Tensor, *, norm: str,
                    bounds: tuple[float, float]) -> torch.Tensor:
    """Project ``z`` ``(b, m, ...)`` onto the ``norm`` ball of radius ``radius[i]`` around ``x0[i]``, then clip.

    ``x0`` is ``(b, ...)`` and inside ``bounds``. Clipping to the box afterwards never leaves the ball: each
    coordinate only moves towards ``x0``'s, which is inside the box. L2 rows already inside the ball are
    returned unscaled.
    """
    lo, hi = bounds
    row = (-1, *[1] * (x0.dim() - 1))
    if norm == "linf":
        lo_b = (x0 - radius.view(row))[:, None]
        hi_b = (x0 + radius.view(row))[:, None]
        return torch.minimum(torch.maximum(z, lo_b), hi_b).clamp(lo, hi)
    delta = z - x0[:, None]
    size = delta.flatten(2).norm(dim=2)  # (b, m)
    outside = (size > radius[:, None]).view(*size.shape, *row[1:])
    factor = (radius[:, None] / size.clamp_min(1e-30)).view(*size.shape, *row[1:])
    return torch.where(outside, x0[:, None] + delta * factor, z).clamp(lo, hi)


def nes_steps(x: torch.Tensor, g: torch.Tensor, lrs: torch.Tensor, *, norm: str) -> torch.Tensor:
    """Candidate points ``(b, tries, ...)``: ``x`` moved along the estimate ``g`` by each step size in ``lrs``.

    "linf": ``x + lr * sign(g)`` (Ilyas et al.); "l2": ``x + lr * g / ||g||_2`` (``lrs`` already in L2 units).
    """
    shape = (1, -1, *[1] * (x.dim() - 1))
    if norm == "linf":
        direction = g.sign()
    else:
        direction = g / g.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (x.dim() - 1))
    return x[:, None] + lrs.view(shape) * direction[:, None]


@ATTACKS.register("pia")
class PartialInfoAttack(AttackInterface, fb.attacks.base.FixedEpsilonAttack):
    """Ilyas et al.'s partial-information attack; the call's ``epsilon`` is the goal radius in ``norm``.

    Call with ``starting_pool=`` candidate start images (e.g. the test split: a tensor, a
    :class:`~advaudio.attacks.pool.PoolSource` or a :class:`~advaudio.attacks.pool.StartingPool`); the
    attack picks, through the oracle, one the victim puts in each target class. The model is only ever
    queried through :class:`TopKOracle` (forward-only). Pass ``stats=`` a dict to have the number of
    samples the oracle was asked about added to ``stats["queries"]`` (the key is created if absent); the
    attack keeps no state.

    ``norm="linf"`` is Ilyas et al.'s attack. ``norm="l2"`` runs the same algorithm in the L2 norm: the radius
    around the victim shrinks in L2 to ``epsilon``; each NES step is ``g / ||g||_2`` times ``lr * sqrt(d)``
    (the L2 size of an L-inf sign step of ``lr``), the radius decreases (``start_delta``, ``min_delta``)
    are scaled by ``sqrt(d)`` likewise, and each candidate is projected onto the L2 ball of the current radius
    and then clipped to the bounds. In both norms the output is within ``epsilon`` of the input in that norm:
    samples that did not finish are projected onto the goal ball.

    Parameters
    ----------
    steps : int
        NES iterations per sample (the study: 500).
    samples : int
        NES queries per iteration (antithetic pairs).
    sigma : float
        NES search standard deviation.
    lr : float
        Largest L-infinity step (sign of the estimate); halved ``lr_tries - 1`` times per iteration,
        all tries queried in one batch. In L-infinity units for both norms (``norm="l2"`` scales by sqrt(d)).
    lr_tries : int
        Step sizes tried per iteration.
    start_delta : float
        First decrease of the radius per iteration; halved whenever no step keeps the target in the top-k.
        In L-infinity units, like ``lr``.
    min_delta : float
        Smallest radius decrease tried before shrinking stops. In L-infinity units, like ``lr``.
    k : int
        Classes revealed by the oracle.
    chunk : int
        Forward batch size of the oracle.
    seed : int
        Seed of the NES samples.
    norm : {"linf", "l2"}
        Norm of the radius, the goal ``epsilon`` and the steps. The instance's ``distance`` (foolbox's
        clipping norm) follows it; the class attribute is the default's, L-infinity.

    Raises
    ------
    ValueError
        On an unknown ``norm``.
    """


    @classmethod
    def max_calls(cls, rung: dict[str, Any], *, n_classes: int, n_features: int) -> tuple[int, int]:
        """No gradient; per step ``samples`` NES queries and ``lr_tries`` candidate queries (the starting
        pool, queried once per search, is counted by the planner)."""
        steps, samples = int(rung_setting(cls, rung, "steps")), int(rung_setting(cls, rung, "samples"))
        return 0, steps * (2 * max(samples // 2, 1) + int(rung_setting(cls, rung, "lr_tries")))

    distance = fb.distances.linf
    targeted = True
    black_box = True
    seeded = True
    call_kwargs = ("starting_pool", "stats")
    # seed is set by the budget search (seeded); samples come in antithetic pairs
    rung_limits = {"steps": AT_LEAST_ONE, "samples": Limit(lo=2, hi=100_000, even=True), "sigma": POSITIVE, "lr": POSITIVE,
                   "lr_tries": AT_LEAST_ONE, "start_delta": POSITIVE, "min_delta": POSITIVE, "k": AT_LEAST_ONE,
                   "chunk": AT_LEAST_ONE, "norm": Limit(choices=NORMS)}

    def __init__(
        self,
        *,
        steps: int = 100,
        samples: int = 50,
        sigma: float = 0.001,
        lr: float = 0.01,
        lr_tries: int = 3,
        start_delta: float = 0.2,
        min_delta: float = 1e-4,
        k: int = 5,
        chunk: int = 32,
        seed: int = 0,
        norm: str = "linf",
    ) -> None:
        if norm not in NORMS:
            raise ValueError(f"pia norm = {norm!r}; choose from {list(NORMS)}")
        self.steps = steps
        self.samples = samples
        self.sigma = sigma
        self.lr = lr
        self.lr_tries = lr_tries
        self.start_delta = start_delta
        self.min_delta = min_delta
        self.k = k
        self.chunk = chunk
        self.seed = seed
        self.norm = norm
        # foolbox's __call__ clips with self.distance, a class attribute there; this instance's norm shadows it
        self.distance = fb.distances.l2 if norm == "l2" else fb.distances.linf

    @classmethod
    def bounded(cls, rung: dict[str, Any], *, bound: float, n_features: int) -> dict[str, Any]:
        """``rung`` in the L2 norm with the bound as its goal: ``norm="l2"``, ``epsilon=bound``.

        Every output is then inside the L2 ball by construction (see the class docstring).
        """
        check_bound(bound, n_features)
        return {**rung, "norm": "l2", "epsilon": float(bound)}

    def run(
        self,
        model: fb.Model,
        inputs: Any,
        criterion: Any,
        *,
        epsilon: float,
        starting_pool: Any = None,
        stats: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Attack ``inputs`` towards the criterion's targets within ``epsilon`` (in ``norm``).

        Parameters
        ----------
        model : foolbox.Model
            The victim; only queried through a :class:`TopKOracle`.
        inputs : tensor
            Victims inside ``model.bounds``.
        criterion : foolbox.criteria.TargetedMisclassification
            The targets.
        epsilon : float
            Goal radius around each input, in ``norm``.
        starting_pool : tensor, PoolSource or StartingPool
            Candidate start images; required. A :class:`~advaudio.attacks.pool.PoolSource` is streamed
            (classified in batches, only the picked images fetched); a
            :class:`~advaudio.attacks.pool.StartingPool` shared by several calls is classified only once.
        stats : dict, optional
            Caller-owned; ``stats["queries"]`` is increased by the samples queried (also when the attack
            raises).

        Raises
        ------
        ValueError
            Without ``starting_pool``, on unknown kwargs or a criterion that is not targeted.
        """
        x0_ep, restore_type, targets = targeted_run_inputs("pia", model, inputs, criterion, kwargs)
        if starting_pool is None:
            raise ValueError("pia needs starting_pool=: candidate images to start from (e.g. the test split)")
        x0 = x0_ep.raw
        pool = starting_pool if isinstance(starting_pool, StartingPool) else StartingPool(_pool_images(starting_pool))
        oracle = TopKOracle(predict=lambda z: model(ep.astensor(z)).raw, k=self.k, chunk=self.chunk)
        try:
            x = self._attack(oracle, x0, pool, targets, epsilon, tuple(model.bounds))
        finally:
            if stats is not None:
                stats["queries"] = stats.get("queries", 0) + oracle.queries
        return restore_type(ep.astensor(x))

    def _attack(self, oracle, x0, pool, targets, goal, bounds) -> torch.Tensor:
        norm = self.norm
        scale = math.sqrt(x0[0].numel()) if norm == "l2" else 1.0  # L-inf step sizes to the norm's units
        gen = torch.Generator(device=x0.device).manual_seed(self.seed)
        x, found = pick_starting_points(oracle=oracle, pool=pool, targets=targets, fallback=x0)
        n = len(x0)
        eps = ball_sizes(x - x0, norm).clamp_min(goal)
        delta = torch.full((n,), self.start_delta * scale, device=x0.device)
        active = torch.nonzero(found & (eps > goal), as_tuple=True)[0]
        lrs = torch.tensor([self.lr * scale * 0.5**i for i in range(self.lr_tries)], device=x0.device)

        for step in range(self.steps):
            if active.numel() == 0:
                break
            xa, x0a, ta = x[active], x0[active], targets[active]
            b = len(active)

            def objective(z: torch.Tensor, first: int) -> torch.Tensor:
                c, p = oracle(z)
                per_row = 2 * max(self.samples // 2, 1)
                return target_log_prob(c, p, ta[first : first + len(z) // per_row].repeat_interleave(per_row))

            g = nes_gradient(objective=objective, x=xa, sigma=self.sigma, n_samples=self.samples, generator=gen)
            new_eps = torch.maximum(eps[active] - delta[active], torch.full_like(eps[active], goal))
            # all step sizes at once: (b, tries, ...)
            cand = project_to_ball(x0a, nes_steps(xa, g, lrs, norm=norm), new_eps, norm=norm, bounds=bounds)
            c, _ = oracle(cand.flatten(0, 1))
            c = c.view(b, self.lr_tries, -1)
            ok = (c == ta.view(-1, 1, 1)).any(dim=2)  # target still in the top-k
            any_ok = ok.any(dim=1)
            choice = ok.float().argmax(dim=1)  # the largest step that kept it
            rows = torch.arange(b, device=x0.device)
            x[active[any_ok]] = cand[rows[any_ok], choice[any_ok]]
            eps[active[any_ok]] = new_eps[any_ok]
            top1 = c[rows, choice, 0] == ta
            fail = active[~any_ok]
            delta[fail] = torch.clamp(delta[fail] / 2, min=self.min_delta * scale)
            done = any_ok & (new_eps <= goal) & top1
            # The radius falls by at most delta per step and delta never grows, so a row whose radius cannot
            # reach the goal in the steps left can never finish: it stops here (its output is the projection
            # onto the goal ball below, as it would be after the last step).
            left = self.steps - 1 - step
            hopeless = eps[active] - delta[active] * left > goal * (1 + HOPELESS_RTOL)
            active = active[~(done | hopeless)]
        goal_radius = torch.full((n,), float(goal), device=x0.device, dtype=x0.dtype)
        return project_to_ball(x0, x[:, None], goal_radius, norm=norm, bounds=bounds)[:, 0]

