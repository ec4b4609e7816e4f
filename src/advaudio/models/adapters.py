"""Input adaptation shared by all victims: [0, 1] inputs are normalised and, when smaller than the
architecture's minimum, bilinearly upsampled inside the network, so data and attacks stay in [0, 1] at
the representation's own size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InputAdapter(nn.Module):
    """Normalise ``(x - mean) / std`` and upsample to at least ``min_size`` (bilinear, per axis).

    Parameters
    ----------
    mean, std : float
        Normalisation constants (buffers, so they follow the model's device and are saved with it).
    min_size : tuple of int
        ``(H_min, W_min)``; an input axis shorter than this is stretched to it, longer axes are kept.
    """

    def __init__(self, *, mean: float, std: float, min_size: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.min_size = (int(min_size[0]), int(min_size[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) -> (B, 1, H', W')
        x = (x - self.mean) / self.std
        h, w = x.shape[-2:]
        target = (max(h, self.min_size[0]), max(w, self.min_size[1]))
        if target != (h, w):
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
        return x

    def extra_repr(self) -> str:
        return f"min_size={self.min_size}"


class AdaptedNet(nn.Module):
    """``body(adapter(x))``: a victim network taking ``(B, 1, H, W)`` in [0, 1] and returning logits."""

    def __init__(self, *, adapter: InputAdapter, body: nn.Module) -> None:
        super().__init__()
        self.adapter = adapter
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.adapter(x))
