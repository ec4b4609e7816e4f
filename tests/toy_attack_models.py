"""Tiny torch models, victims and ladders shared by the attack and budget-search tests."""


import numpy as np
import torch

from advaudio.evaluation.budget import budget_search

SHAPE = (1, 6, 6)
D = int(np.prod(SHAPE))
K = 4

LADDERS = {
    "bim_a": [{"epsilon": 1.0, "steps": 20, "rel_stepsize": 0.1}, {"epsilon": 3.0, "steps": 30, "rel_stepsize": 0.1}],
    "bim_b": [{"epsilon": 1.0, "steps": 10, "rel_stepsize": 0.25}, {"epsilon": 3.0, "steps": 10, "rel_stepsize": 0.25}],
    "jsma": [{"max_iterations": 30, "theta": 1.0}],
    "deepfool": [{"steps": 50}],
    "cw": [{"c": 1.0, "steps": 100, "binary_search_steps": 4, "stepsize": 0.05}],
    "pia": [{"epsilon": 0.5, "steps": 60, "samples": 40, "lr": 0.05}],
}


def linear_model(seed: int = 0, n_classes: int = K) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(D, n_classes)).eval()


def threshold_model(threshold: float) -> torch.nn.Module:
    """Logits (x0, x1, threshold) of a (1, 1, 2) input: class 2 wins where both features are below ``threshold``
    (the transfer tests' two models differ only in it)."""
    layer = torch.nn.Linear(2, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        layer.bias.copy_(torch.tensor([0.0, 0.0, threshold]))
    return torch.nn.Sequential(torch.nn.Flatten(), layer).eval()


def smooth_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(D, 16), torch.nn.Tanh(), torch.nn.Linear(16, K)
    ).eval()


class ConstantModel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([3.0, 1.0, 0.0, -1.0]).expand(len(x), K) + 0.0 * x.flatten(1).sum(1, keepdim=True)


class NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("gradients are forbidden")


class NoGradModel(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(NoBackward.apply(x))


def band_model(*, size: tuple[int, int] = SHAPE[1:], n_classes: int = K) -> torch.nn.Module:
    """Logits that tell the classes of :func:`advaudio.training.fake_features.write_fake_features` apart:
    class k scores the mean of the rows around its band (k + 0.5) * height / n_classes. No gradients."""
    h, w = size
    rows = torch.arange(h, dtype=torch.float32)
    centres = (torch.arange(n_classes, dtype=torch.float32) + 0.5) * h / n_classes
    weight = torch.exp(-0.5 * ((rows[None, :] - centres[:, None]) / (h / (2 * n_classes))) ** 2)  # (K, h)
    linear = torch.nn.Linear(h * w, n_classes)
    with torch.no_grad():
        linear.weight.copy_((10.0 * weight / w)[:, :, None].expand(n_classes, h, w).flatten(1))
        linear.bias.zero_()
    model = torch.nn.Sequential(torch.nn.Flatten(), linear).eval()
    return model.requires_grad_(False)


POOL = torch.cat([torch.rand((256, *SHAPE), generator=torch.Generator().manual_seed(5)) ** p for p in (0.2, 1.0, 5.0)])


def victims(model, n=8, seed=0):
    """Victims in the middle of the box and a wrong target for each that some POOL image has (for pia)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand((n, *SHAPE), generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
        reachable = set(model(POOL).argmax(1).tolist())
    t = torch.tensor([sorted(reachable - {int(c)})[int(torch.randint(0, 100, (1,), generator=g)) % (len(reachable - {int(c)}))] for c in y])
    return x, y, t


def run(name, model, x, y, t, ladder=None, **kw):
    kw.setdefault("starting_pool", POOL)
    return budget_search(name=name, model=model, x=x, labels=y, targets=t, ladder=ladder or LADDERS[name],
                         target_fooling_rate=1.0, batch_size=4, **kw)


