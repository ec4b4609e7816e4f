"""Numerical precision of the attack stages: bf16 autocast for the attacks on CUDA, exact float32 for verification.

An attack's own arithmetic only proposes candidates, so on CUDA it may run under bf16 autocast
(``attack.amp``). Whether a candidate counts is decided in float32 with TF32 off, the same arithmetic as on the
CPU, so a CPU re-check of adversarials found on a GPU (``python -m advaudio.evaluation.recheck``) agrees.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def attack_autocast(device: torch.device, *, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``enabled``; nothing on other devices."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """No autocast and no TF32 inside the block (restored afterwards)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
