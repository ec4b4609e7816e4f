"""Verification by re-classification (PROTOCOL "Success"): an attack's own flag is never trusted."""

from __future__ import annotations

import torch


@torch.no_grad()
def predict(*, model: torch.nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Top-1 classes of ``x`` ``(N, 1, H, W)`` under ``model``, forward-only, in batches."""
    return torch.cat([model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def verify_adversarials(
    *,
    model: torch.nn.Module,
    x: torch.Tensor,
    adv: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-classify clipped adversarials.

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

    Returns
    -------
    success : torch.Tensor
        ``(N,)`` bool: predicted the target (targeted) or any wrong class (untargeted); adversarials
        outside [0, 1] or holding NaN never count.
    l2 : torch.Tensor
        ``(N,)`` ||adv - x||_2.
    """
    pred = predict(model=model, x=adv)
    ok = pred == targets if targets is not None else pred != labels
    flat = adv.flatten(1)
    valid = torch.isfinite(flat).all(dim=1) & (flat.min(dim=1).values >= 0) & (flat.max(dim=1).values <= 1)
    return ok & valid, (adv - x).flatten(1).norm(dim=1)
