"""APGD (L2, CE and DLR losses): known answers on linear models, the step-size schedule, seeding, the bound."""

import foolbox as fb
import pytest
import torch

from advaudio.attacks import ATTACKS
from advaudio.attacks.apgd import apgd_l2, checkpoints, dlr_loss


def linear(weight: torch.Tensor) -> torch.nn.Module:
    """Logits W x (no bias) on flattened inputs."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False))
    with torch.no_grad():
        model[1].weight.copy_(weight)
    return model.eval()


def margins(weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each sample's L2 distance to the nearest other class's half-space: min_j (z_y - z_j) / ||w_y - w_j||."""
    z = x.flatten(1) @ weight.T
    dist = torch.full((len(x),), float("inf"))
    for j in range(weight.shape[0]):
        d = (z[torch.arange(len(x)), y] - z[:, j]) / (weight[y] - weight[j]).norm(dim=1).clamp_min(1e-12)
        dist = torch.where(y == j, dist, torch.minimum(dist, d))
    return dist


def placed(weight: torch.Tensor, y: torch.Tensor, distances: torch.Tensor, *, dim: int) -> torch.Tensor:
    """Inputs near 0.5 (far from the [0, 1] bounds) at the given distance from the nearest other class; the rows
    of ``weight`` sum to 0, so all logits are 0 at the centre and the moves stay small."""
    gen = torch.Generator().manual_seed(7)
    x = 0.5 + 0.02 * torch.randn(len(y), dim, generator=gen)
    for i in range(len(y)):  # move along the nearest boundary's normal until the margin is as asked
        for _ in range(50):
            m = margins(weight, x[i:i + 1], y[i:i + 1])[0]
            z = x[i] @ weight.T
            others = [j for j in range(weight.shape[0]) if j != int(y[i])]
            j = min(others, key=lambda k: float((z[y[i]] - z[k]) / (weight[y[i]] - weight[k]).norm()))
            normal = (weight[y[i]] - weight[j]) / (weight[y[i]] - weight[j]).norm()
            x[i] = x[i] + (distances[i] - m) * normal
    return x


@pytest.mark.parametrize("loss, n_classes", [("ce", 2), ("dlr", 3), ("dlr", 5)])
def test_apgd_fools_exactly_the_samples_closer_than_epsilon_to_a_linear_boundary(loss, n_classes):
    gen = torch.Generator().manual_seed(1)
    dim, eps = 16, 0.1
    weight = torch.randn(n_classes, dim, generator=gen)
    weight -= weight.mean(dim=1, keepdim=True)
    y = torch.arange(8) % n_classes
    distances = torch.tensor([0.5, 0.7, 0.8, 0.9, 1.02, 1.1, 1.5, 2.0]) * eps
    x = placed(weight, y, distances, dim=dim)
    torch.testing.assert_close(margins(weight, x, y), distances, rtol=1e-4, atol=1e-6)
    assert x.min() > 0.2 and x.max() < 0.8  # the bounds never bind within eps
    model = linear(weight)
    adv = apgd_l2(model, x, y, epsilon=eps, steps=50, loss=loss, generator=torch.Generator().manual_seed(0))
    fooled = model(adv).argmax(1) != y
    assert fooled.tolist() == (distances < eps).tolist()
    assert ((adv - x).flatten(1).norm(dim=1) <= eps * (1 + 1e-5)).all() and adv.min() >= 0 and adv.max() <= 1


def test_dlr_loss_known_values_and_invariance():
    logits = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [0.0, 5.0, 1.0]])
    labels = torch.tensor([0, 2, 1])
    expected = torch.tensor([-(3 - 2) / (3 - 1), -(1 - 3) / (3 - 1), -(5 - 1) / (5 - 0)])
    torch.testing.assert_close(dlr_loss(logits, labels), expected)
    torch.testing.assert_close(dlr_loss(4.0 * logits - 7.0, labels), expected)
    with pytest.raises(ValueError, match="at least 3 classes"):
        dlr_loss(torch.zeros(2, 2), torch.tensor([0, 1]))


def test_step_size_checkpoints_follow_the_papers_schedule():
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06): 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1) == [] and checkpoints(5) == [1, 2, 3, 4]


def test_apgd_is_seeded_and_the_registered_attacks_keep_the_bound():
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(3, 16, generator=gen)
    model = linear(weight)
    x = 0.5 + 0.1 * torch.rand(6, 1, 4, 4, generator=gen)
    y = model(x).argmax(1)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    for name in ("apgd_ce", "apgd_dlr"):
        cls = ATTACKS.get(name)
        assert cls.reference and not cls.targeted and cls.seeded
        runs = [cls(steps=5, seed=s)(fmodel, x, fb.criteria.Misclassification(y), epsilons=0.05)[1] for s in (1, 1, 2)]
        assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
        assert ((runs[0] - x).flatten(1).norm(dim=1) <= 0.05 * (1 + 1e-5)).all()
        assert cls.bounded({"epsilon": 4.0, "steps": 5}, bound=0.3, n_features=16) == {"epsilon": 0.3, "steps": 5}
        with pytest.raises(ValueError, match="untargeted"):
            cls(steps=2).run(fmodel, x, fb.criteria.TargetedMisclassification(y), epsilon=0.05)
