"""Count what an attack asks of the model: samples passed forward and samples differentiated through it."""

from __future__ import annotations

import torch


class CountingModule(torch.nn.Module):
    """Wrap a model and count the samples it sees, whatever the attack says about itself.

    ``forward_samples`` counts every sample of every forward pass. ``gradient_samples`` counts, per backward
    pass that actually reaches the model's output, the samples of that output: a hook on the output tensor
    fires only when autograd propagates through it, so a gradient is counted exactly when one is computed,
    and a black-box attack that secretly differentiates is caught.

    Parameters
    ----------
    model : torch.nn.Module
        The victim, in eval mode.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.gradient_samples = 0
        self.forward_samples = 0
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) -> (B, K)
        n = x.shape[0]
        self.forward_samples += n
        out = self.model(x)
        if out.requires_grad:
            out.register_hook(lambda grad: self._count_gradient(n))
        return out

    def _count_gradient(self, n: int) -> None:
        self.gradient_samples += n

    def reset(self) -> None:
        """Zero both counters."""
        self.gradient_samples = 0
        self.forward_samples = 0
