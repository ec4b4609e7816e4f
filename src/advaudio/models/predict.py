"""The project's one batched forward pass: logits of a model on many inputs, for evaluation and verification."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


@torch.inference_mode()
def predict_batches(model: nn.Module, batches: Iterable[torch.Tensor], *, channels_last: bool = False) -> torch.Tensor:
    """Logits of ``model`` in eval mode on each ``(B, 1, H, W)`` batch (already on the model's device), as
    float32 on the CPU, concatenated ``(N, K)``. The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    outs = []
    try:
        for xb in batches:
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            outs.append(model(xb).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def predict(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Logits of ``model`` on ``x`` ``(N, 1, H, W)`` in eval mode, as float32 on the CPU, ``(N, K)``.

    Batches are moved to ``device`` (default: where ``x`` is). The model's train/eval mode is restored
    afterwards.
    """
    device = torch.device(device) if device is not None else x.device
    batches = (x[start : start + batch_size].to(device, non_blocking=True) for start in range(0, len(x), batch_size))
    return predict_batches(model, batches, channels_last=channels_last)
