"""The one resize used by every representation: bilinear with antialiasing (torch)."""

from __future__ import annotations

import numpy as np
import torch


def resize(*, image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2D array to (height, width).

    Bilinear interpolation with antialiasing, so shrinking 1025 STFT bins to 32 rows averages the
    bins instead of picking a few of them.

    Returns
    -------
    np.ndarray
        (height, width) float32.
    """
    if image.ndim != 2:
        raise ValueError(f"resize expects a 2D array, got shape {image.shape}")
    if image.shape == (height, width):
        return image.astype(np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, F, T)
    out = torch.nn.functional.interpolate(
        tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )
    return out[0, 0].numpy()
