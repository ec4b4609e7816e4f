"""The project's one batched forward pass: logits of a model on many inputs, for evaluation and verification."""

from __future__ import annotations

import torch
from torch import nn


@torch.inference_mode()
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
    was_training = model.training
    model.eval()
    outs = []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device, non_blocking=True)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            outs.append(model(xb).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)
