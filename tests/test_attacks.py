"""Known-answer and property tests of the attack suite on tiny torch models."""

import copy
import inspect
import math

import foolbox as fb
import numpy as np
import pytest
import torch

from advaudio.attacks import ATTACKS
from advaudio.attacks.bim import bim_a
from advaudio.attacks.jsma import jsma
from advaudio.errors import ConfigError
from advaudio.attacks.pia import TopKOracle, nes_gradient, target_log_prob
from toy_attack_models import D, K, LADDERS, POOL, SHAPE, linear_model, smooth_model, victims


def test_registry_holds_the_six_attacks_and_fgsm():
    assert set(ATTACKS.names()) == {"bim_a", "bim_b", "jsma", "deepfool", "cw", "pia", "fgsm", "apgd_ce", "apgd_dlr"}
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


@pytest.mark.parametrize("candidates", [None, 3])
def test_deepfool_gives_foolboxs_adversarials_with_one_forward_pass_per_step(candidates):
    from advaudio.evaluation.counting import CountingModule

    model = smooth_model()
    x, y, _ = victims(model, n=8)
    x = torch.cat([x, x[:2] * 0.2])  # more samples, some needing more steps than others
    with torch.no_grad():
        y = model(x).argmax(1)
    ours, theirs = CountingModule(model), CountingModule(model)
    crit = fb.criteria.Misclassification(y)
    kw = {"steps": 50, "candidates": candidates, "overshoot": 0.02}
    adv = ATTACKS.get("deepfool")(**kw).run(fb.PyTorchModel(ours, bounds=(0, 1)), x, crit)
    ref = fb.attacks.L2DeepFoolAttack(**kw, loss="logits").run(fb.PyTorchModel(theirs, bounds=(0, 1)), x, crit)
    torch.testing.assert_close(adv, ref, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert (model(adv).argmax(1) != y).all()
    # foolbox: one forward and backward pass per candidate and step over the whole batch; here one forward
    # pass per step over the samples not yet adversarial
    assert ours.forward_samples * 2 < theirs.forward_samples
    assert ours.gradient_samples < theirs.gradient_samples


def test_deepfool_rejects_a_targeted_criterion():
    model = smooth_model()
    x, y, t = victims(model, n=2)
    with pytest.raises(ValueError, match="untargeted"):
        ATTACKS.get("deepfool")().run(fb.PyTorchModel(model, bounds=(0, 1)), x, fb.criteria.TargetedMisclassification(t))


def opposed_linear_model(seed: int = 3) -> torch.nn.Module:
    """Two classes with weights w and -w: every pair's saliency is (|w_p| + |w_q|)^2."""
    model = linear_model(seed, n_classes=2)
    with torch.no_grad():
        model[1].weight[1] = -model[1].weight[0]
        model[1].bias.zero_()
    return model


def jsma_changes(model, x, t, **kw):
    adv, iterations, features = jsma(model, x, t, **kw)
    delta = (adv - x).flatten()
    changed = torch.nonzero(delta != 0).flatten()
    return set(changed.tolist()), torch.sign(delta[changed]), changed, (iterations, features)


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
        changed, signs, idx, (its, feats) = jsma_changes(model, x, t, max_iterations=iterations, theta=0.01,
                                                         pairs=pairs)
        assert changed == set(order[: per * iterations])
        assert (signs == torch.sign(diff[idx])).all()  # each feature moved towards the target
        assert its.tolist() == [iterations]
        assert feats.tolist() == [per * iterations]


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
    adv, _, features = jsma(model, x, t, max_iterations=50, theta=1.0, gamma=5 / D)
    l0 = ((adv - x).flatten(1) != 0).sum(1)
    assert (l0 <= 5).all() and (features == l0).all()
    run_adv = ATTACKS.get("jsma")(max_iterations=50, theta=1.0, gamma=5 / D).run(
        fb.PyTorchModel(model, bounds=(0, 1)), x, fb.criteria.TargetedMisclassification(t))
    torch.testing.assert_close(run_adv, adv, rtol=0, atol=0)  # the foolbox run is the functional core


def test_nes_estimate_aligns_with_true_gradient():
    model = smooth_model()
    x = torch.rand((3, *SHAPE))
    targets = torch.tensor([0, 1, 2])
    oracle = TopKOracle(predict=model, k=K, chunk=32)
    gen = torch.Generator().manual_seed(0)

    def objective(z, first):
        c, p = oracle(z)
        return target_log_prob(c, p, targets[first : first + len(z) // 2000].repeat_interleave(2000))

    est = nes_gradient(objective=objective, x=x, sigma=1e-3, n_samples=2000, generator=gen)
    # the samples are drawn row by row: processing one row at a time gives the same estimate
    one_row = nes_gradient(objective=objective, x=x, sigma=1e-3, n_samples=2000,
                           generator=torch.Generator().manual_seed(0), max_chunk_bytes=1)
    torch.testing.assert_close(one_row, est)
    xg = x.clone().requires_grad_(True)
    torch.log_softmax(model(xg), 1).gather(1, targets[:, None]).sum().backward()
    cos = torch.nn.functional.cosine_similarity(est.flatten(1), xg.grad.flatten(1), dim=1)
    assert (cos > 0.9).all(), cos
    assert oracle.queries == 2 * 3 * 2000


class ListedPool:
    """A :class:`~advaudio.attacks.pool.PoolSource` over a tensor that records what it is asked for."""

    def __init__(self, images, *, batch_size):
        self.images, self.batch_size = images, batch_size
        self.batch_sizes, self.reads = [], []

    def __len__(self):
        return len(self.images)

    def image_batches(self, *, multiple_of, device):
        step = math.ceil(self.batch_size / multiple_of) * multiple_of
        for start in range(0, len(self.images), step):
            self.batch_sizes.append(len(self.images[start : start + step]))
            yield self.images[start : start + step].clone().to(device)

    def read(self, rows, *, device):
        self.reads.append(np.asarray(rows).tolist())
        return self.images[torch.from_numpy(rows)].clone().to(device)


def test_starting_pool_is_classified_once_for_every_batch_it_serves():
    from advaudio.attacks.pia import pick_starting_points
    from advaudio.attacks.pool import StartingPool

    model = smooth_model()
    source = ListedPool(POOL, batch_size=50)
    picked = {}
    for images in (POOL, source):
        oracle = TopKOracle(predict=model, k=K, chunk=32)
        pool = StartingPool(images)
        for targets in (torch.tensor([0, 1]), torch.tensor([2, 3, 1])):
            fallback = torch.zeros(len(targets), *SHAPE)
            starts, found = pick_starting_points(oracle=oracle, pool=pool, targets=targets, fallback=fallback)
            assert starts is not fallback and not fallback.any()  # a new tensor: the attack writes into it
            assert found.any() and torch.equal(starts[~found], fallback[~found])
            with torch.no_grad():
                assert (model(starts[found]).argmax(1) == targets[found]).all()
            picked.setdefault(len(targets), []).append((starts, int(found.sum())))
        assert oracle.queries == len(POOL)
    assert all(torch.equal(a, b) and m == n for (a, m), (b, n) in picked.values())  # the same from either form
    assert source.batch_sizes == [64] * 12  # 50 rounded up to the oracle's chunk of 32; once, not per batch
    assert [len(r) for r in source.reads] == [n for _, (_, n) in picked.values()]  # only the picked are fetched


def test_pia_with_a_streamed_pool_equals_the_tensor_pool():
    model = smooth_model()
    x, _, t = victims(model, n=6)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    crit = fb.criteria.TargetedMisclassification(t)
    for norm, chunk in (("linf", 32), ("l2", 7)):
        attack = ATTACKS.get("pia")(steps=20, samples=10, lr=0.05, chunk=chunk, norm=norm, seed=3)
        tensor_stats, streamed_stats = {}, {}
        expected = attack.run(fmodel, x, crit, epsilon=0.3, starting_pool=POOL, stats=tensor_stats)
        source = ListedPool(POOL, batch_size=20)
        got = attack.run(fmodel, x, crit, epsilon=0.3, starting_pool=source, stats=streamed_stats)
        assert torch.equal(got, expected), norm
        assert streamed_stats == tensor_stats and tensor_stats["queries"] > len(POOL), norm
        assert max(source.batch_sizes) <= math.ceil(20 / chunk) * chunk and sum(source.batch_sizes) == len(POOL)
        assert sum(len(r) for r in source.reads) <= len(x)


def test_starting_pool_rejects_what_it_cannot_read():
    from advaudio.attacks.pool import StartingPool

    with pytest.raises(TypeError, match="tensor or a PoolSource"):
        StartingPool([POOL[0], POOL[1]])
    with pytest.raises(ValueError, match=r"saved classes have shape \(3,\); expected \(768,\)"):
        StartingPool(POOL, top1=torch.zeros(3, dtype=torch.long))

    class Longer(ListedPool):
        def __len__(self):
            return len(self.images) + 1

    with pytest.raises(ValueError, match="yielded 768 images but has len 769"):
        StartingPool(Longer(POOL, batch_size=64)).top1(lambda z: z.flatten(1)[:, 0].long(), torch.device("cpu"))


def test_bim_a_stops_at_first_success_and_matches_bim_b_prefix():
    model = smooth_model()
    x, y, t = victims(model)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    crit = fb.criteria.TargetedMisclassification(t)
    adv_a, iters = bim_a(model, x, t, targeted=True, epsilon=3.0, steps=30, rel_stepsize=0.1)
    torch.testing.assert_close(ATTACKS.get("bim_a")(steps=30, rel_stepsize=0.1).run(fmodel, x, crit, epsilon=3.0),
                               adv_a, rtol=0, atol=0)  # the foolbox run is the functional core
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



class ZeroIsTargetModel(torch.nn.Module):
    """Two classes: the label 0 everywhere except at (and within a mean of 0.01 of) the all-zero image, class 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.flatten(1).mean(1)
        return torch.stack([torch.zeros_like(mean), 1.0 - 100.0 * mean], dim=1)


def test_cw_returns_the_input_for_rows_it_never_fooled():
    model = ZeroIsTargetModel().eval()
    x = 0.3 + 0.4 * torch.rand((3, *SHAPE), generator=torch.Generator().manual_seed(0))
    t = torch.ones(3, dtype=torch.long)
    with torch.no_grad():
        assert (model(x).argmax(1) == 0).all() and model(torch.zeros_like(x)).argmax(1).tolist() == [1, 1, 1]
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    crit = fb.criteria.TargetedMisclassification(t)
    kw = {"steps": 20, "binary_search_steps": 2, "stepsize": 0.01}  # ~0.2 in tanh space: far from the zero image
    foolbox_out = fb.attacks.L2CarliniWagnerAttack(initial_const=1.0, **kw).run(fmodel, x, crit)
    assert not foolbox_out.any()  # foolbox's marker of failure, which the model calls a success
    raw, clipped, success = ATTACKS.get("cw")(c=1.0, **kw)(fmodel, x, crit, epsilons=None)
    torch.testing.assert_close(raw, x, rtol=0, atol=0)
    torch.testing.assert_close(clipped, x, rtol=0, atol=0)
    assert not success.any()


def test_deepfool_considers_every_class_by_default():
    # 12 classes; at x the label 0 leads, classes 1..10 trail by 0.1 k but lie ~10 k away, class 11 trails by 5
    # but its boundary is 0.1 away: outside foolbox's default top-10 candidates, yet the nearest boundary
    n_classes = 12
    gen = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(n_classes, D, generator=gen), dim=1)
    scale = torch.tensor([0.0] + [0.01] * 10 + [50.0])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(D, n_classes)).eval()
    x = torch.full((1, *SHAPE), 0.5)
    with torch.no_grad():
        model[1].weight.copy_(u * scale[:, None])
        wanted = torch.tensor([0.0] + [-0.1 * k for k in range(1, 11)] + [-5.0])
        model[1].bias.copy_(wanted - model[1].weight @ x.flatten())
    y = torch.zeros(1, dtype=torch.long)
    _, adv, ok = ATTACKS.get("deepfool")(steps=50, overshoot=0.0)(
        fb.PyTorchModel(model, bounds=(0, 1)), x, fb.criteria.Misclassification(y), epsilons=None)
    assert ok.all()
    with torch.no_grad():
        assert model(adv).argmax(1).tolist() == [11]
    np.testing.assert_allclose(float((adv - x).norm()), 0.1, rtol=0.02)


def test_attacks_keep_no_per_call_state():
    model = smooth_model()
    x, y, t = victims(model, n=4)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    for name in ATTACKS:
        cls = ATTACKS.get(name)
        rung = dict(LADDERS.get(name, [{"epsilon": 0.1}])[0])
        epsilon = rung.pop("epsilon", None)
        attack = cls(**rung)
        before = copy.deepcopy(vars(attack))
        crit = (fb.criteria.TargetedMisclassification(t) if cls.targeted else fb.criteria.Misclassification(y))
        extra = {"starting_pool": POOL} if "starting_pool" in cls.call_kwargs else {}
        attack(fmodel, x, crit, epsilons=epsilon, **extra)
        assert {k: repr(v) for k, v in vars(attack).items()} == {k: repr(v) for k, v in before.items()}, name


def test_pia_adds_its_oracle_queries_to_the_callers_stats():
    model = smooth_model()
    x, _, t = victims(model, n=4)
    asked = []

    class Counting(torch.nn.Module):
        def forward(self, z):
            asked.append(len(z))
            return model(z)

    fmodel = fb.PyTorchModel(Counting().eval(), bounds=(0, 1))
    attack = ATTACKS.get("pia")(steps=5, samples=10)
    crit = fb.criteria.TargetedMisclassification(t)
    stats = {}
    attack.run(fmodel, x, crit, epsilon=0.5, starting_pool=POOL, stats=stats)
    assert stats["queries"] == sum(asked) > 0  # created, and exactly the samples the model was asked about
    asked.clear()
    stats = {"queries": 7, "other": 1}
    attack(fmodel, x, crit, epsilons=0.5, starting_pool=POOL, stats=stats)  # foolbox's __call__ passes it on
    assert stats == {"queries": 7 + sum(asked) - len(x), "other": 1}  # __call__'s own success check is no query
    attack.run(fmodel, x, crit, epsilon=0.5, starting_pool=POOL)  # stats is optional


def test_every_attack_declares_its_call_interface():
    for name in ATTACKS:
        cls = ATTACKS.get(name)
        assert isinstance(cls.targeted, bool) and isinstance(cls.black_box, bool), name
        assert isinstance(cls.call_kwargs, tuple), name
        accepted = {p.name for p in inspect.signature(cls.run).parameters.values()
                    if p.kind is p.KEYWORD_ONLY and p.name not in ("epsilon", "early_stop")}
        assert set(cls.call_kwargs) == accepted, name
    assert ATTACKS.get("pia").call_kwargs == ("starting_pool", "stats") and ATTACKS.get("pia").black_box
    assert [n for n in ATTACKS if not ATTACKS.get(n).targeted] == ["apgd_ce", "apgd_dlr", "deepfool", "fgsm"]


def test_bounded_rungs_follow_each_attacks_rule():
    bound = 0.3
    for name in ("bim_a", "bim_b"):
        cls = ATTACKS.get(name)
        assert cls.bounded({"epsilon": 1.0, "steps": 5}, bound=bound, n_features=D) == {"epsilon": 0.3, "steps": 5}
        assert cls.bounded({"epsilon": 0.2, "steps": 5}, bound=bound, n_features=D) == {"epsilon": 0.2, "steps": 5}
    for name in ("cw", "deepfool"):
        rung = dict(LADDERS[name][0])
        assert ATTACKS.get(name).bounded(rung, bound=bound, n_features=D) == rung
    jsma_cls = ATTACKS.get("jsma")
    # pairs: cap = min(2 * 30, 1.0 * 36) = 36; single: cap = min(10, 36) = 10; gamma 0.25: cap = int(9.0) = 9
    assert jsma_cls.bounded({"max_iterations": 30, "theta": 1.0}, bound=bound, n_features=D) == {
        "max_iterations": 30, "theta": pytest.approx(bound / 6)}
    assert jsma_cls.bounded({"max_iterations": 10, "pairs": False}, bound=bound, n_features=D)["theta"] == (
        pytest.approx(bound / math.sqrt(10)))
    assert jsma_cls.bounded({"max_iterations": 30, "gamma": 0.25}, bound=bound, n_features=D)["theta"] == pytest.approx(0.1)
    assert jsma_cls.bounded({"max_iterations": 30, "theta": 0.01}, bound=bound, n_features=D)["theta"] == 0.01
    pia_rung = ATTACKS.get("pia").bounded({"epsilon": 0.5, "steps": 3}, bound=bound, n_features=D)
    assert pia_rung == {"epsilon": bound, "steps": 3, "norm": "l2"}
    assert ATTACKS.get("pia")(norm="l2").distance is fb.distances.l2
    assert ATTACKS.get("pia").distance is fb.distances.linf and ATTACKS.get("pia")().distance is fb.distances.linf
    fgsm_rung = ATTACKS.get("fgsm").bounded({"epsilon": 1.0}, bound=bound, n_features=D)
    assert fgsm_rung == {"epsilon": pytest.approx(bound / 6)}
    with pytest.raises(ValueError, match="bound"):
        ATTACKS.get("cw").bounded({}, bound=0.0, n_features=D)
    with pytest.raises(ValueError, match="n_features"):
        ATTACKS.get("cw").bounded({}, bound=1.0, n_features=0)
    with pytest.raises(ValueError, match="norm"):
        ATTACKS.get("pia")(norm="l1")


@pytest.mark.parametrize("name", ["bim_a", "bim_b", "jsma", "pia", "fgsm"])
def test_bounded_rungs_stay_in_the_ball_without_projection(name):
    bound = 0.3
    model = smooth_model()
    x, y, t = victims(model, n=8)
    cls = ATTACKS.get(name)
    ladder = LADDERS.get(name, [{"epsilon": 1.0}])
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    crit = fb.criteria.TargetedMisclassification(t) if cls.targeted else fb.criteria.Misclassification(y)
    hits = 0
    for rung in ladder:
        kwargs = cls.bounded(rung, bound=bound, n_features=D)
        epsilon = kwargs.pop("epsilon", None)
        extra = {"starting_pool": POOL} if "starting_pool" in cls.call_kwargs else {}
        run_kw = {} if epsilon is None else {"epsilon": epsilon}
        adv = cls(**kwargs).run(fmodel, x, crit, **run_kw, **extra)  # run: foolbox's __call__ would clip
        norms = (adv - x).flatten(1).norm(dim=1)
        assert (norms <= bound * (1 + 1e-5)).all(), (name, norms.max().item())
        assert adv.min() >= 0 and adv.max() <= 1
        with torch.no_grad():
            pred = model(adv).argmax(1)
        hits += int(((pred == t) if cls.targeted else (pred != y)).sum())
    if name == "pia":  # the L2 mode succeeds within the bound, not merely stays inside it
        assert hits >= len(x) // 2, hits


def test_pia_l2_mode_keeps_a_target_class_start_and_shrinks_to_the_goal():
    model = smooth_model()
    x, _, t = victims(model, n=8)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = ATTACKS.get("pia")(steps=60, samples=40, lr=0.05, norm="l2")
    raw, clipped, success = attack(fmodel, x, fb.criteria.TargetedMisclassification(t), epsilons=0.5,
                                   starting_pool=POOL)
    torch.testing.assert_close(raw, clipped)  # already within the goal L2 ball: foolbox's L2 clip is a no-op
    assert success.sum() >= 6
    assert ((raw - x).flatten(1).norm(dim=1) <= 0.5 * (1 + 1e-5)).all()
    # the same goal in L-inf lets the perturbation grow far beyond 0.5 in L2 (linf mode is unchanged)
    linf = ATTACKS.get("pia")(steps=60, samples=40, lr=0.05).run(fmodel, x, fb.criteria.TargetedMisclassification(t),
                                                                  epsilon=0.5, starting_pool=POOL)
    assert (linf - x).flatten(1).abs().amax(dim=1).max() <= 0.5 + 1e-6
    assert (linf - x).flatten(1).norm(dim=1).max() > 1.0


def test_pia_stops_rows_whose_radius_can_no_longer_reach_the_goal():
    from advaudio.evaluation.counting import CountingModule

    model = smooth_model()
    x, _, t = victims(model, n=4)
    counting = CountingModule(model)
    fmodel = fb.PyTorchModel(counting, bounds=(0, 1))
    crit = fb.criteria.TargetedMisclassification(t)
    steps, samples, tries = 40, 10, 3
    # the radius may fall by 1e-3 per step from a start image about 0.5 away in L-inf: a goal of 0.01 is out of
    # reach from the first step, so every row stops after it
    attack = ATTACKS.get("pia")(steps=steps, samples=samples, lr_tries=tries, start_delta=1e-3, min_delta=1e-3)
    adv = attack.run(fmodel, x, crit, epsilon=0.01, starting_pool=POOL)
    assert counting.forward_samples == len(POOL) + len(x) * (samples + tries)  # the pool, then one step per row
    assert ((adv - x).flatten(1).abs().amax(dim=1) <= 0.01 + 1e-6).all()  # still projected onto the goal ball
    # with a reachable goal (0.05 per step from about 0.5 to 0.3) rows keep going and finish
    counting.reset()
    reach = ATTACKS.get("pia")(steps=steps, samples=samples, lr_tries=tries, lr=0.05, start_delta=0.05)
    adv = reach.run(fmodel, x, crit, epsilon=0.3, starting_pool=POOL)
    assert counting.forward_samples > len(POOL) + 2 * len(x) * (samples + tries)
    with torch.no_grad():
        assert (model(adv).argmax(1) == t).sum() >= 2
