"""Known-answer and property tests of the attack suite on tiny torch models."""

import foolbox as fb
import numpy as np
import pytest
import torch

from advaudio.attacks import ATTACKS
from advaudio.attacks.budget import budget_search
from advaudio.attacks.pia import TopKOracle, nes_gradient, target_log_prob
from advaudio.attacks.victims import select_victims
from advaudio.errors import ConfigError, DataError

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
    return budget_search(name=name, model=model, x=x, labels=y, targets=t, ladder=ladder or LADDERS[name],
                         target_fooling_rate=1.0, batch_size=4, starting_pool=POOL, **kw)


def test_registry_holds_the_six_attacks_and_fgsm():
    assert set(ATTACKS.names()) == {"bim_a", "bim_b", "jsma", "deepfool", "cw", "pia", "fgsm"}
    with pytest.raises(ConfigError, match="choose from"):
        ATTACKS.get("jsam")


def test_deepfool_finds_closed_form_minimal_perturbation_on_linear_model():
    model = linear_model()
    x, y, _ = victims(model)
    w, b = model[1].weight.detach().double(), model[1].bias.detach().double()
    logits = x.flatten(1).double() @ w.T + b
    expected = []
    for i in range(len(x)):
        dists = [(logits[i, y[i]] - logits[i, k]) / (w[y[i]] - w[k]).norm() for k in range(K) if k != y[i]]
        expected.append(float(min(dists)))
    attack = ATTACKS.get("deepfool")(steps=50, overshoot=0.0)
    _, adv, ok = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, fb.criteria.Misclassification(y), epsilons=None)
    found = (adv - x).flatten(1).norm(dim=1).numpy()
    # foolbox adds a tiny 1e-4 step beyond the boundary even with zero overshoot
    np.testing.assert_allclose(found, expected, rtol=0.02, atol=1e-3)


def opposed_linear_model(seed: int = 3) -> torch.nn.Module:
    """Two classes with weights w and -w: every pair's saliency is (|w_p| + |w_q|)^2."""
    model = linear_model(seed, n_classes=2)
    with torch.no_grad():
        model[1].weight[1] = -model[1].weight[0]
        model[1].bias.zero_()
    return model


def jsma_changes(model, x, t, **kw):
    attack = ATTACKS.get("jsma")(**kw)
    adv = attack.run(fb.PyTorchModel(model, bounds=(0, 1)), x, fb.criteria.TargetedMisclassification(t))
    delta = (adv - x).flatten()
    changed = torch.nonzero(delta != 0).flatten()
    return set(changed.tolist()), torch.sign(delta[changed]), changed, attack


@pytest.mark.parametrize("pairs", [True, False])
def test_jsma_changes_largest_weight_differences_first(pairs):
    model = opposed_linear_model()
    x = torch.full((1, *SHAPE), 0.5)
    with torch.no_grad():
        y = model(x).argmax(1)
    t = 1 - y
    w = model[1].weight.detach()
    diff = w[t[0]] - w[y[0]]
    order = diff.abs().argsort(descending=True).tolist()
    per = 2 if pairs else 1
    for iterations in (1, 3):  # theta small enough that the target is not reached
        changed, signs, idx, attack = jsma_changes(model, x, t, max_iterations=iterations, theta=0.01, pairs=pairs)
        assert changed == set(order[: per * iterations])
        assert (signs == torch.sign(diff[idx])).all()  # each feature moved towards the target
        assert attack.last_iterations.tolist() == [iterations]
        assert attack.last_features.tolist() == [per * iterations]


@pytest.mark.parametrize("output", ["logits", "softmax"])
def test_jsma_pair_is_the_full_pairwise_map_argmax_with_enough_candidates(output):
    model = linear_model(seed=1)
    x = 0.3 + 0.4 * torch.rand((1, *SHAPE), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    t = (y + 1) % K
    net = linear_model(seed=1).double()

    def f(z):  # the network output F the saliency map is taken of
        out = net(z)[0]
        return torch.softmax(out, 0) if output == "softmax" else out

    jac = torch.autograd.functional.jacobian(f, x.double()).reshape(K, D)  # forward derivative dF_j/dx_i
    alpha, beta = jac[t[0]], jac.sum(0) - jac[t[0]]
    a, b = torch.cat([alpha, -alpha]), torch.cat([beta, -beta])  # moves: rise 0..D-1, fall D..2D-1

    def best_pair(moves):
        best, arg = 0.0, None
        for i in moves:
            for j in moves:
                if i < j and i % D != j % D and a[i] + a[j] > 0 and b[i] + b[j] < 0:
                    sal = float((a[i] + a[j]) * -(b[i] + b[j]))
                    if sal > best:
                        best, arg = sal, (i, j)
        return arg

    for candidates in (2 * D, 8):
        moves = (a - b).argsort(descending=True)[:candidates].tolist()
        i, j = best_pair(moves)
        changed, signs, idx, _ = jsma_changes(model, x, t, max_iterations=1, theta=0.01, candidates=candidates,
                                              output=output)
        assert changed == {i % D, j % D}
        expected = {i % D: 1.0 if i < D else -1.0, j % D: 1.0 if j < D else -1.0}
        assert {int(f): float(s) for f, s in zip(idx, signs)} == expected


def test_jsma_respects_feature_budget():
    model = smooth_model()
    x, y, t = victims(model, n=4)
    attack = ATTACKS.get("jsma")(max_iterations=50, theta=1.0, gamma=5 / D)
    adv = attack.run(fb.PyTorchModel(model, bounds=(0, 1)), x, fb.criteria.TargetedMisclassification(t))
    l0 = ((adv - x).flatten(1) != 0).sum(1)
    assert (l0 <= 5).all() and (torch.from_numpy(attack.last_features) == l0).all()


def test_nes_estimate_aligns_with_true_gradient():
    model = smooth_model()
    x = torch.rand((3, *SHAPE))
    targets = torch.tensor([0, 1, 2])
    oracle = TopKOracle(predict=model, k=K, chunk=32)
    gen = torch.Generator().manual_seed(0)

    def objective(z):
        c, p = oracle(z)
        return target_log_prob(c, p, targets.repeat_interleave(len(z) // 3))

    est = nes_gradient(objective=objective, x=x, sigma=1e-3, n_samples=2000, generator=gen)
    xg = x.clone().requires_grad_(True)
    torch.log_softmax(model(xg), 1).gather(1, targets[:, None]).sum().backward()
    cos = torch.nn.functional.cosine_similarity(est.flatten(1), xg.grad.flatten(1), dim=1)
    assert (cos > 0.9).all(), cos
    assert oracle.queries == 3 * 2000


def test_bim_a_stops_at_first_success_and_matches_bim_b_prefix():
    model = smooth_model()
    x, y, t = victims(model)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    crit = fb.criteria.TargetedMisclassification(t)
    bim_a = ATTACKS.get("bim_a")(steps=30, rel_stepsize=0.1)
    adv_a = bim_a.run(fmodel, x, crit, epsilon=3.0)
    iters = bim_a.last_iterations
    assert (iters <= 30).all() and iters.max() > 0
    with torch.no_grad():
        hit = model(adv_a).argmax(1) == t
    for i in range(len(x)):
        k = int(iters[i])
        ref = ATTACKS.get("bim_b")(steps=k, rel_stepsize=0.1).run(fmodel, x[i : i + 1], fb.criteria.TargetedMisclassification(t[i : i + 1]), epsilon=3.0)
        torch.testing.assert_close(adv_a[i : i + 1], ref, atol=1e-5, rtol=0)
        if hit[i] and k > 0:  # one step fewer was not yet adversarial
            prev = ATTACKS.get("bim_b")(steps=k - 1, rel_stepsize=0.1).run(fmodel, x[i : i + 1], fb.criteria.TargetedMisclassification(t[i : i + 1]), epsilon=3.0)
            with torch.no_grad():
                assert model(prev).argmax(1) != t[i]


def test_cw_finds_smaller_perturbations_than_bim_b():
    model = smooth_model()
    x, y, t = victims(model, n=8)
    cw = run("cw", model, x, y, t)
    bim = run("bim_b", model, x, y, t, ladder=[{"epsilon": 3.0, "steps": 10, "rel_stepsize": 0.25}])
    both = cw.success & bim.success
    assert both.sum() >= 4
    assert cw.l2[both].mean() < bim.l2[both].mean()


@pytest.mark.parametrize("name", sorted(LADDERS))
def test_every_attack_fools_verified_stays_in_range_and_is_seeded(name):
    model = smooth_model()
    x, y, t = victims(model, n=8)
    r1 = run(name, model, x, y, t)
    r2 = run(name, model, x, y, t)
    assert r1.fooling_rate >= 0.5, (name, r1.fooling_rate)
    assert r1.adv.min() >= 0 and r1.adv.max() <= 1 and not np.isnan(r1.adv).any()
    with torch.no_grad():
        pred = model(torch.from_numpy(r1.adv)).argmax(1).numpy()
    goal = y.numpy() if name == "deepfool" else t.numpy()
    hit = pred != goal if name == "deepfool" else pred == goal
    np.testing.assert_array_equal(hit, r1.success)
    np.testing.assert_array_equal(r1.l2, r2.l2)
    np.testing.assert_array_equal(r1.adv, r2.adv)
    assert (r1.queries > 0) if name == "pia" else (r1.gradient_calls > 0)


@pytest.mark.parametrize("name", sorted(LADDERS))
def test_bounded_attacks_never_exceed_bound(name):
    model = smooth_model()
    x, y, t = victims(model, n=6)
    r = run(name, model, x, y, t, bound=0.3)
    norms = np.linalg.norm((r.adv - x.numpy()).reshape(len(x), -1), axis=1)
    assert (norms <= 0.3 + 1e-5).all()
    assert (r.l2[r.success] <= 0.3 + 1e-5).all()


@pytest.mark.parametrize("name", sorted(LADDERS))
def test_constant_model_is_never_fooled(name):
    model = ConstantModel().eval()
    x = torch.rand((4, *SHAPE))
    y = torch.zeros(4, dtype=torch.long)
    t = torch.tensor([1, 2, 3, 1])
    r = run(name, model, x, y, t)
    assert not r.success.any() and np.isinf(r.l2).all()
    assert r.level == len(LADDERS[name])


def test_pia_never_touches_gradients():
    model = NoGradModel(smooth_model()).eval()
    x, y, t = victims(model, n=4)
    r = run("pia", model, x, y, t)
    assert r.fooling_rate > 0 and r.gradient_calls == 0 and r.queries > 0


def test_budget_search_keeps_fooled_victims_out_of_later_rungs():
    model = smooth_model()
    x, y, t = victims(model, n=8)
    ladder = [{"epsilon": 0.5, "steps": 10, "rel_stepsize": 0.25}, {"epsilon": 3.0, "steps": 10, "rel_stepsize": 0.25}]
    r = run("bim_b", model, x, y, t, ladder=ladder)
    first = run("bim_b", model, x, y, t, ladder=ladder[:1])
    assert r.fr_per_level[0] == first.fooling_rate and r.fr_per_level == sorted(r.fr_per_level)
    assert r.gradient_calls == 10 * len(x) + 10 * int((~first.success).sum())
    np.testing.assert_array_equal(r.l2[first.success], first.l2[first.success])


def test_budget_search_rejects_bad_rungs():
    model = smooth_model()
    x, y, t = victims(model, n=2)
    with pytest.raises(ConfigError, match="needs an 'epsilon'"):
        run("bim_b", model, x, y, t, ladder=[{"steps": 3}])
    with pytest.raises(ConfigError, match="rung 1"):
        run("cw", model, x, y, t, ladder=[{"cc": 3}])
    with pytest.raises(ConfigError, match="empty"):
        budget_search(name="cw", model=model, x=x, labels=y, targets=t, ladder=[], target_fooling_rate=0.9, batch_size=2)


def test_select_victims_is_stratified_seeded_and_targets_are_wrong(rng):
    labels = np.repeat(np.arange(5), 10)
    preds = labels.copy()
    preds[::3] = (preds[::3] + 1) % 5  # some misclassified
    rows, targets = select_victims(labels=labels, predictions=preds, n_victims=10, n_classes=5, seed=7)
    rows2, targets2 = select_victims(labels=labels, predictions=preds, n_victims=10, n_classes=5, seed=7)
    np.testing.assert_array_equal(rows, rows2)
    np.testing.assert_array_equal(targets, targets2)
    assert (labels[rows] == preds[rows]).all()
    assert np.bincount(labels[rows], minlength=5).tolist() == [2] * 5
    assert (targets != labels[rows]).all() and targets.min() >= 0 and targets.max() < 5
    with pytest.raises(DataError, match="no test sample"):
        select_victims(labels=labels, predictions=(labels + 1) % 5, n_victims=3, n_classes=5, seed=0)
