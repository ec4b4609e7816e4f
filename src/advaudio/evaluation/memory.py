"""Batch sizes from measured memory: what one sample costs the model, and what the device has free.

At the study's sizes one ResNet-56 sample keeps gigabytes of activations for its backward pass, so a fixed
batch of 32 victims does not fit on any single GPU, while at 32x32 it is kilobytes. The attack stages
therefore size their batches from a measurement (``attack.batch_size: 0``); an explicit ``attack.batch_size``
wins.
"""

from __future__ import annotations

from typing import Sequence

import psutil
import torch

# Share of the free memory a batch's activations may take: the rest holds the attack's own buffers (BIM's
# iterates, CW's Adam state, NES samples), the weights and the allocator's slack.
MEMORY_FRACTION = 0.4
PROBE_BATCH = 2


def per_sample_bytes(*, model: torch.nn.Module, input_shape: Sequence[int], device: torch.device,
                     backward: bool = True) -> int:
    """Bytes one sample costs ``model``: the tensors autograd saves for the backward pass (measured with
    saved-tensor hooks on a probe batch, each storage counted once) plus the input, its gradient and the logits;
    forward-only (``backward=False``): the largest intermediate output instead.
    """
    x = torch.rand((PROBE_BATCH, *input_shape), device=device)
    if not backward:
        largest = [x.numel() * x.element_size()]

        def record(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                largest[0] = max(largest[0], output.numel() * output.element_size())

        handles = [m.register_forward_hook(record) for m in model.modules()]
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
        return max(1, 3 * largest[0] // PROBE_BATCH)  # input, output and one intermediate alive at once
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    x.requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    (grad,) = torch.autograd.grad(out.float().logsumexp(dim=1).sum(), x)
    total = sum(seen.values()) + 2 * x.numel() * x.element_size() + out.numel() * out.element_size()
    del out, grad
    return max(1, total // PROBE_BATCH)


def free_bytes(device: torch.device) -> int:
    """Free memory of ``device``: ``cudaMemGetInfo`` on CUDA, the OS's available RAM on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


def batch_size_for(*, per_sample: int, free: int, cap: int = 256, fraction: float = MEMORY_FRACTION) -> int:
    """The largest batch whose samples take at most ``fraction`` of ``free`` bytes, within [1, ``cap``]."""
    return max(1, min(cap, int(free * fraction) // max(per_sample, 1)))


def attack_batch_size(*, explicit: int, model: torch.nn.Module, input_shape: Sequence[int],
                      device: torch.device) -> int:
    """``explicit`` when positive, else a batch sized from the model's measured per-sample memory."""
    if explicit > 0:
        return explicit
    return batch_size_for(per_sample=per_sample_bytes(model=model, input_shape=input_shape, device=device),
                          free=free_bytes(device))
