"""Verification by re-classification (docs/PROTOCOL.md "Success"): an attack's own flag is never trusted."""

from __future__ import annotations

import torch

from advaudio.evaluation.ball import within_bound
from advaudio.evaluation.precision import exact_float32
from advaudio.models.predict import predict


def l2_distances(x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Per-row ``||adv - x||_2`` in float64 (the same numbers as :func:`advaudio.evaluation.metrics.l2_norms`
    computes from the stored float32 arrays)."""
    return (adv.double() - x.double()).flatten(1).norm(dim=1)


@torch.no_grad()
def verify_adversarials(
    *,
    model: torch.nn.Module,
    x: torch.Tensor,
    adv: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    bound: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-classify adversarials.

    Parameters
    ----------
    model : torch.nn.Module
        The victim (eval mode).
    x, adv : torch.Tensor
        Originals and adversarials, ``(N, 1, H, W)``.
    labels : torch.Tensor
        True classes ``(N,)``.
    targets : torch.Tensor or None
        Targets for a targeted attack; ``None`` for untargeted.
    bound : float, optional
        The L2 bound of a bounded stage; adversarials outside it (:func:`~advaudio.evaluation.ball.within_bound`)
        never count.

    Returns
    -------
    success : torch.Tensor
        ``(N,)`` bool on the CPU: predicted the target (targeted) or any wrong class (untargeted);
        adversarials outside [0, 1], outside the bound or holding NaN never count.
    l2 : torch.Tensor
        ``(N,)`` float64 ||adv - x||_2 on the CPU.
    """
    with exact_float32():
        pred = predict(model, adv).argmax(dim=1)
    goal = (targets if targets is not None else labels).cpu()
    ok = pred == goal if targets is not None else pred != goal
    flat = adv.flatten(1)
    valid = torch.isfinite(flat).all(dim=1) & (flat.min(dim=1).values >= 0) & (flat.max(dim=1).values <= 1)
    l2 = l2_distances(x, adv).cpu()
    if bound is not None:
        valid = valid.cpu() & within_bound(l2, bound)
    return ok & valid.cpu(), l2
