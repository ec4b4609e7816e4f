"""Count the samples a model is asked about: gradient evaluations vs forward-only queries."""

from __future__ import annotations

import torch


class CountingModule(torch.nn.Module):
    """Wrap a model and count the samples it sees.

    A forward pass on an input that requires grad is counted as a gradient evaluation (foolbox's
    ``PyTorchModel`` enables autograd exactly when the attack asks for gradients); any other pass is a
    forward-only evaluation.

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
        if x.requires_grad and torch.is_grad_enabled():
            self.gradient_samples += x.shape[0]
        else:
            self.forward_samples += x.shape[0]
        return self.model(x)

    def reset(self) -> None:
        """Zero both counters."""
        self.gradient_samples = 0
        self.forward_samples = 0
