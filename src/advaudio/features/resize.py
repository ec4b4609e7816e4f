"""The one resize used by every representation: bilinear with antialiasing (torch), batched on any device."""

from __future__ import annotations

import numpy as np
import torch


def resize_batch(x: torch.Tensor, *, height: int, width: int) -> torch.Tensor:
    """Resize a batch of 2D arrays ``(B, h, w)`` to ``(B, 1, height, width)`` on ``x``'s device.

    Bilinear interpolation with antialiasing (``align_corners=False``), so shrinking 1025 STFT bins to 32
    rows averages the bins instead of picking a few of them. Computed in ``x``'s floating dtype.
    """
    if x.ndim != 3:
        raise ValueError(f"resize_batch expects (B, h, w), got shape {tuple(x.shape)}")
    x = x[:, None]  # (B, 1, h, w)
    if tuple(x.shape[2:]) == (height, width):
        return x
    return torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False,
                                           antialias=True)


def resize(*, image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize one 2D array to (height, width) with :func:`resize_batch`; returns float32 (height, width)."""
    if image.ndim != 2:
        raise ValueError(f"resize expects a 2D array, got shape {image.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]  # (1, F, T)
    return resize_batch(tensor, height=height, width=width)[0, 0].numpy()
