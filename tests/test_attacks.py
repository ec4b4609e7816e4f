"""Known-answer and property tests of the attack suite on tiny torch models."""

import foolbox as fb
import numpy as np
import pytest
import torch

from advaudio.attacks import ATTACKS
from advaudio.errors import ConfigError
from advaudio.attacks.pia import TopKOracle, nes_gradient, target_log_prob
from toy_attack_models import D, K, SHAPE, linear_model, smooth_model, victims


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


