"""Jacobian-based saliency map attack, targeted, L0 (Papernot et al. 2016, https://arxiv.org/abs/1511.07528).

foolbox 3 lacks it; written here as the functional core :func:`jsma` (which also returns each sample's
iteration and feature counts) behind foolbox's ``MinimizationAttack`` interface (:class:`JSMA`), batched in
torch on the model's device.

Variant: **pairs among the top-k candidates**, saliency map on the **softmax output (JSMA-F)** by default.

Pairs (``pairs=True``): Papernot's Algorithm 3 changes two features per iteration, chosen by the pairwise
saliency map over all pairs, which needs O(d^2) memory per sample and is too big at spectrogram sizes. Here
the map is the paper's, exactly, but searched only over pairs of the ``candidates`` best single moves. With
alpha_i = dF_t/dx_i and beta_i = sum_{j != t} dF_j/dx_i on the network output F, a move is a feature i and
a direction s = +1 (rise, if x_i < hi) or -1 (fall, if x_i > lo), with signed (A, B) = s (alpha_i, beta_i);
the candidates are the moves with the largest A - B. A pair of moves on two different features is
admissible iff A = A_p + A_q > 0 and B = B_p + B_q < 0, and its saliency is A * |B|. Restricted to rises
this is the paper's increasing map (theta > 0), restricted to falls its decreasing map (theta < 0); this
attack lets each feature go either way. With ``candidates >= 2 d`` the search covers every pair (the full
pairwise map; a known-answer test checks it against a brute-force search). If no candidate pair is
admissible, the iteration falls back to the best admissible single move (the single-feature map, Eq. 2 of
the study: alpha > 0 > beta rising or alpha < 0 < beta falling, saliency |alpha * beta|); if none is
admissible either, the sample has failed. ``pairs=False`` always uses the single-feature map.

Output F (``output``): ``"logits"`` is JSMA-Z (F = Z, Papernot's choice); ``"softmax"`` is JSMA-F (F = the
class probabilities; Carlini & Wagner 2017, https://arxiv.org/abs/1608.04644, section V). With
probabilities beta = -alpha, so a move is admissible iff it raises F_t, the saliency is A^2, the top-2
candidate moves are the exact best pair, and one backward pass per iteration suffices. JSMA-F is the
default because JSMA-Z fails on the synth ResNet-56: raising Z_t while lowering the *sum* of the other
logits let one other logit run away (measured on the 20 default victims: JSMA-Z with theta 1 reached FR
0.25 with up to 600 of 1024 features changed; JSMA-F with theta 0.1 reached FR 0.90 with up to 300).
Small steps (``theta`` ~0.1) matter for the same reason: a saturating step (theta = 1) leaves the region
where the first-order map is informative, for JSMA-F too.

Each iteration changes its features by ``theta`` (clipped to the bounds) and removes them from the search
domain. Cost per iteration: one forward pass with autograd and one backward pass (JSMA-Z: one batched
backward for alpha and beta, ``torch.autograd.grad(..., is_grads_batched=True)``); the forward also decides success,
and samples leave the batch at their first adversarial iterate or when their feature budget
(``min(2 * max_iterations, gamma * d)`` for pairs, ``min(max_iterations, gamma * d)`` single) is spent.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import eagerpy as ep
import foolbox as fb
import torch

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import (ANY, AT_LEAST_ONE, MAX_COUNT, FRACTION, AttackInterface, Limit, check_bound, is_adversarial,
                                     raw_model, rung_setting, targeted_run_inputs)

OUTPUTS = ("softmax", "logits")


def feature_cap(*, max_iterations: int, gamma: float, pairs: bool, n_features: int) -> int:
    """Most features JSMA may change per sample: ``min(2 * max_iterations, gamma * d)`` for pairs,
    ``min(max_iterations, gamma * d)`` single (``gamma * d`` rounded down)."""
    per_iter = 2 if pairs else 1
    return min(per_iter * int(max_iterations), int(gamma * n_features))


def check_jsma_settings(*, max_iterations: int, theta: float, gamma: float, candidates: int, output: str) -> None:
    """Validate JSMA's settings.

    Raises
    ------
    ValueError
        On ``gamma`` outside (0, 1], a non-positive ``theta``, ``max_iterations`` < 0, ``candidates`` < 2 or
        an unknown ``output``.
    """
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"jsma gamma = {gamma!r}; expected a fraction in (0, 1]")
    if theta <= 0.0:
        raise ValueError(f"jsma theta = {theta!r}; expected a positive step")
    if max_iterations < 0:
        raise ValueError(f"jsma max_iterations = {max_iterations!r}; expected >= 0")
    if output not in OUTPUTS:
        raise ValueError(f"jsma output = {output!r}; choose from {list(OUTPUTS)}")
    if candidates < 2:
        raise ValueError(f"jsma candidates = {candidates!r}; expected >= 2")


def jsma(
    call: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    targets: torch.Tensor,
    *,
    max_iterations: int = 100,
    theta: float = 1.0,
    gamma: float = 1.0,
    pairs: bool = True,
    candidates: int = 32,
    output: str = "softmax",
    bounds: tuple[float, float] = (0.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targeted L0 JSMA (the module docstring describes the variant).

    Parameters
    ----------
    call : callable
        Maps a batch of inputs to logits, differentiably (a torch module or :func:`raw_model`).
    x0 : torch.Tensor
        Inputs, ``(n, ...)``, inside ``bounds``.
    targets : torch.Tensor
        Target classes, ``(n,)``.
    max_iterations, theta, gamma, pairs, candidates, output
        As for :class:`JSMA`.
    bounds : tuple of float
        Valid input range; changed features are clipped to it.

    Returns
    -------
    x : torch.Tensor
        The last iterate of each sample, detached, shaped like ``x0``. Each feature is changed at most once
        and by at most ``theta``, so ``||x - x0||_2 <= sqrt(features_changed) * theta``.
    iterations : torch.Tensor
        Iterations each sample ran, ``(n,)`` int64.
    features_changed : torch.Tensor
        Features each sample changed, ``(n,)`` int64, at most :func:`feature_cap`.

    Raises
    ------
    ValueError
        On invalid settings (:func:`check_jsma_settings`).
    """
    check_jsma_settings(max_iterations=max_iterations, theta=theta, gamma=gamma, candidates=candidates,
                        output=output)
    lo, hi = bounds
    x = x0.detach().clone()
    n, d = len(x), x[0].numel()
    cap = feature_cap(max_iterations=max_iterations, gamma=gamma, pairs=pairs, n_features=d)
    domain = torch.ones(n, d, dtype=torch.bool, device=x.device)  # features not yet changed
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    used = torch.zeros(n, dtype=torch.long, device=x.device)
    active = torch.arange(n, device=x.device)
    if cap == 0:
        active = active[:0]
    while active.numel() > 0:
        xa = x[active].detach().requires_grad_(True)
        logits = call(xa)  # (b, K)
        t = targets[active]
        keep = ~is_adversarial(logits.detach(), t, targeted=True)
        if not bool(keep.any()):
            break
        alpha, beta = _alpha_beta(logits, xa, t, keep, output)  # (b, d) each, zero on finished rows
        with torch.no_grad():
            idx = active[keep]
            xf = xa.detach()[keep].flatten(1)
            alpha, beta = alpha[keep], beta[keep]
            allow_pair = (used[idx] + 2 <= cap) if pairs else torch.zeros_like(idx, dtype=torch.bool)
            feats, deltas, moved = _select(alpha, beta, xf, domain[idx], lo=lo, hi=hi, theta=theta,
                                           allow_pair=allow_pair, candidates=candidates)
            # feats, deltas: (b, 2); the second column is -1 / 0 where only one feature moves
            rows = torch.arange(len(idx), device=x.device)
            for c in range(2):
                f = feats[:, c]
                ok = moved & (f >= 0)
                r, fc = rows[ok], f[ok]
                xf[r, fc] = (xf[r, fc] + deltas[ok, c]).clamp(lo, hi)
                domain[idx[ok], fc] = False
                used[idx[ok]] += 1
            x[idx] = xf.view(-1, *x.shape[1:])
            iterations[idx[moved]] += 1
            active = idx[moved & (used[idx] < cap)]  # success of the others is verified by the caller
    return x, iterations, used


@ATTACKS.register("jsma")
class JSMA(AttackInterface, fb.attacks.base.MinimizationAttack):
    """Targeted L0 JSMA (:func:`jsma`) behind foolbox's ``MinimizationAttack`` interface.

    Two features per iteration (pairs among the top-k candidates) by default; ``run`` returns the
    adversarials only (:func:`jsma` also returns the iteration and feature counts).

    Parameters
    ----------
    max_iterations : int
        Most iterations per sample; each changes two features (pairs) or one (``pairs=False`` or fallback).
    theta : float
        Change applied to a chosen feature, in input units (sign set by the saliency map).
    gamma : float
        Largest fraction of features that may be changed; caps the feature budget.
    pairs : bool
        Papernot's pairwise map among the top ``candidates`` features (True) or the single-feature map.
    candidates : int
        Moves (feature and direction) among which pairs are searched (``candidates^2 / 2`` pairs per sample).
    output : {"softmax", "logits"}
        Network output F the forward derivatives are taken of: the class probabilities (JSMA-F) or the
        logits (JSMA-Z).

    Raises
    ------
    ValueError
        On invalid settings (:func:`check_jsma_settings`).
    """


    @classmethod
    def max_calls(cls, rung: dict[str, Any], *, n_classes: int, n_features: int) -> tuple[int, int]:
        """One forward-and-backward pass per iteration, at most ``max_iterations``."""
        return int(rung_setting(cls, rung, "max_iterations")), 1

    distance = fb.distances.l0
    targeted = True
    black_box = False
    # zero iterations would attack nothing; a theta beyond 1 exceeds the [0, 1] input range
    rung_limits = {"max_iterations": AT_LEAST_ONE, "theta": FRACTION, "gamma": FRACTION, "pairs": ANY,
                   "candidates": Limit(lo=2, hi=MAX_COUNT), "output": Limit(choices=OUTPUTS)}

    def __init__(self, *, max_iterations: int = 100, theta: float = 1.0, gamma: float = 1.0, pairs: bool = True,
                 candidates: int = 32, output: str = "softmax") -> None:
        check_jsma_settings(max_iterations=max_iterations, theta=theta, gamma=gamma, candidates=candidates,
                            output=output)
        self.max_iterations = int(max_iterations)
        self.theta = float(theta)
        self.gamma = float(gamma)
        self.pairs = bool(pairs)
        self.candidates = int(candidates)
        self.output = output

    @classmethod
    def bounded(cls, rung: dict[str, Any], *, bound: float, n_features: int) -> dict[str, Any]:
        """``rung`` with ``theta = min(theta, bound / sqrt(cap))``, ``cap`` = :func:`feature_cap`.

        At most ``cap`` features change, each by at most ``theta``, so ``cap * theta^2 <= bound^2`` puts every
        output inside the L2 ball by construction. Settings missing from ``rung`` take the constructor's
        defaults; a zero ``cap`` (nothing may change) leaves ``theta`` as it is.
        """
        check_bound(bound, n_features)
        settings = {k: rung_setting(cls, rung, k) for k in ("max_iterations", "theta", "gamma", "pairs")}
        cap = feature_cap(max_iterations=settings["max_iterations"], gamma=settings["gamma"],
                          pairs=bool(settings["pairs"]), n_features=n_features)
        theta = float(settings["theta"])
        if cap > 0:
            theta = min(theta, float(bound) / math.sqrt(cap))
        return {**rung, "theta": theta}

    def run(self, model: fb.Model, inputs: Any, criterion: Any, *, early_stop: float | None = None,
            **kwargs: Any) -> Any:
        x0_ep, restore_type, targets = targeted_run_inputs("jsma", model, inputs, criterion, kwargs)
        x, _, _ = jsma(raw_model(model), x0_ep.raw, targets, max_iterations=self.max_iterations, theta=self.theta,
                       gamma=self.gamma, pairs=self.pairs, candidates=self.candidates, output=self.output,
                       bounds=tuple(model.bounds))
        return restore_type(ep.astensor(x))


def _alpha_beta(logits: torch.Tensor, xa: torch.Tensor, t: torch.Tensor, keep: torch.Tensor,
                output: str) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha (target) and beta (sum of the other classes) forward derivatives, ``(b, d)`` each.

    ``logits``: alpha = dZ_t/dx, beta = sum_{j != t} dZ_j/dx from one batched backward pass. ``softmax``:
    the probabilities F sum to one, so beta = -alpha exactly, and alpha = dF_t/dx = F_t * d log F_t/dx is
    taken as d log F_t/dx from one backward pass (the positive per-sample factor F_t changes no choice and
    avoids underflow when F_t is tiny). Rows where ``keep`` is False get zeros.
    """
    if output == "softmax":
        logp = torch.log_softmax(logits, dim=1).gather(1, t[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad((logp * keep).sum(), xa)
        alpha = grad.flatten(1)
        return alpha, -alpha
    onehot = torch.nn.functional.one_hot(t, logits.shape[1]).to(logits.dtype) * keep[:, None]
    others = keep[:, None].to(logits.dtype) - onehot
    (grads,) = torch.autograd.grad(logits, xa, grad_outputs=torch.stack([onehot, others]), is_grads_batched=True)
    return grads[0].flatten(1), grads[1].flatten(1)  # (2, b, 1, H, W) -> 2 x (b, d)


def _select(alpha: torch.Tensor, beta: torch.Tensor, xf: torch.Tensor, domain: torch.Tensor, *, lo: float,
            hi: float, theta: float, allow_pair: torch.Tensor,
            candidates: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick each row's features to change.

    A move is a feature and a direction (rise if below ``hi``, fall if above ``lo``, in the search domain):
    2d moves per row, move m < d raising feature m and move m >= d lowering feature m - d, each with signed
    ``(A, B) = +-(alpha, beta)``. Returns ``(features (b, 2), deltas (b, 2), moved (b,))``; the second
    feature is -1 where a single feature is changed (no admissible pair, or the row may not change two);
    ``moved`` is False where nothing is admissible (the sample has failed).
    """
    b, d = alpha.shape
    a, bb = torch.cat([alpha, -alpha], dim=1), torch.cat([beta, -beta], dim=1)  # (b, 2d)
    movable = torch.cat([domain & (xf < hi), domain & (xf > lo)], dim=1)
    # single-feature map: rising iff alpha > 0 > beta, falling iff alpha < 0 < beta; saliency |alpha * beta|
    single = torch.where(movable & (a > 0) & (bb < 0), a * -bb, torch.zeros_like(a))
    s_val, s_best = single.max(dim=1)
    moves = torch.stack([s_best, torch.full_like(s_best, -1)], dim=1)  # (b, 2)
    moved = s_val > 0
    if bool(allow_pair.any()):
        k = min(candidates, 2 * d)
        # candidates: the moves that most increase Z_t - sum_{j != t} Z_j
        score = torch.where(movable, a - bb, torch.full_like(a, -torch.inf))
        c_val, c_idx = score.topk(k, dim=1)  # (b, k)
        ca, cb, cf = a.gather(1, c_idx), bb.gather(1, c_idx), c_idx % d
        pa, pb = ca[:, :, None] + ca[:, None, :], cb[:, :, None] + cb[:, None, :]  # (b, k, k) pair A and B
        ok = torch.isfinite(c_val)[:, :, None] & torch.isfinite(c_val)[:, None, :]
        ok &= torch.ones(k, k, dtype=torch.bool, device=a.device).triu(1) & (cf[:, :, None] != cf[:, None, :])
        sal = torch.where(ok & (pa > 0) & (pb < 0), pa * -pb, torch.zeros_like(pa)).flatten(1)
        p_val, p_best = sal.max(dim=1)
        use_pair = allow_pair & (p_val > 0)
        pair = torch.cat([c_idx.gather(1, (p_best // k)[:, None]), c_idx.gather(1, (p_best % k)[:, None])], dim=1)
        moves = torch.where(use_pair[:, None], pair, moves)
        moved = moved | use_pair
    feats = torch.where(moves >= 0, moves % d, moves)
    deltas = torch.where(moves >= 0, torch.where(moves < d, theta, -theta), 0.0).to(alpha.dtype)
    return feats, deltas, moved
