"""FGSM retraining (Eq. 14): the loss at alpha = 0 and 1, and a measurable robustness gain."""

import copy
from functools import partial

import foolbox as fb
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advaudio.attacks import ATTACKS
from advaudio.config import params_from_dict
from advaudio.errors import ConfigError
from advaudio.features.store import open_features
from advaudio.training.fake_features import write_fake_features
from advaudio.training.fgsm_retrain import (craft_fgsm, craft_pgd, crafter, fgsm_retrain, frozen_batchnorm,
                                           retrain_loss)
from advaudio.training.run import train_victim

FGSM_KEYS = {"test_accuracy", "clean_test_accuracy", "accuracy_drop_points", "accuracy_drop_relative",
             "epochs", "seconds", "images_per_second", "n_train"}


def opposed_linear(w: torch.Tensor) -> torch.nn.Module:
    """z0 = w.x, z1 = -w.x: for label 0, grad_x CE = -2 p1 w, so FGSM gives x' = clip(x - eps * sign(w))."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(w.numel(), 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([w.flatten(), -w.flatten()]))
    return model


def test_fgsm_matches_the_closed_form_on_an_opposed_linear_model():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(1, 4, 4, generator=gen)
    model = opposed_linear(w).train()  # no BatchNorm or dropout: the mode changes nothing
    x = torch.rand(5, 1, 4, 4, generator=gen)
    x[0, 0, 0] = torch.tensor([0.0, 1.0, 0.0, 1.0])  # some features at the bounds, where clipping bites
    y = torch.zeros(5, dtype=torch.long)
    eps = 0.1
    expected = (x - eps * torch.sign(w)).clamp(0, 1)
    torch.testing.assert_close(craft_fgsm(model, x, y, epsilon=eps), expected, rtol=0, atol=1e-7)
    _, adv, _ = ATTACKS.get("fgsm")()(fb.PyTorchModel(model.eval(), bounds=(0, 1)), x,
                                      fb.criteria.Misclassification(y), epsilons=eps)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-7)
    model.train()
    clean, _ = retrain_loss(alpha=1.0, craft=partial(craft_fgsm, epsilon=eps))(model, x, y)
    torch.testing.assert_close(clean, F.cross_entropy(model(x), y))
    adv_loss, logits = retrain_loss(alpha=0.0, craft=partial(craft_fgsm, epsilon=eps))(model, x, y)
    torch.testing.assert_close(adv_loss, F.cross_entropy(model(expected), y))
    torch.testing.assert_close(logits, model(expected))
    half, _ = retrain_loss(alpha=0.5, craft=partial(craft_fgsm, epsilon=eps))(model, x, y)
    torch.testing.assert_close(half, 0.5 * clean + 0.5 * adv_loss)


def _bn_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3))
    with torch.no_grad():  # running statistics that differ from any batch's, as after some training
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model



def test_craft_fgsm_is_the_registered_fgsm_attack():
    """Retraining calls foolbox's FGSM directly (it must not import the attack registry): the same x' bit for
    bit as the registered ``fgsm`` on a network with BatchNorm."""
    model = _bn_model().eval()
    x, y = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 1, 2, 0, 1, 2])
    registered = ATTACKS.get("fgsm")().run(fb.PyTorchModel(model, bounds=(0, 1)), x,
                                           fb.criteria.Misclassification(y), epsilon=0.05)
    assert torch.equal(craft_fgsm(model, x, y, epsilon=0.05), registered)

def test_alpha_zero_updates_batchnorm_statistics_from_the_adversarial_batch_only():
    model = _bn_model().train()
    x, y = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    reference = copy.deepcopy(model)
    # x' by hand: FGSM with the model's running statistics (BatchNorm frozen, no other module has a mode)
    frozen = copy.deepcopy(model).eval()
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(frozen(xg), y), xg)
    x_adv = (x + 0.1 * grad.sign()).clamp(0, 1)
    reference(x_adv)  # the only forward pass the statistics may see
    loss, _ = retrain_loss(alpha=0.0, craft=partial(craft_fgsm, epsilon=0.1))(model, x, y)
    bn, ref_bn = model[1], reference[1]
    assert bn.training and torch.is_grad_enabled() and all(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(bn.running_mean, ref_bn.running_mean)
    torch.testing.assert_close(bn.running_var, ref_bn.running_var)
    assert int(bn.num_batches_tracked) == int(ref_bn.num_batches_tracked) == 1
    torch.testing.assert_close(loss, F.cross_entropy(copy.deepcopy(model).train()(x_adv), y), rtol=1e-5, atol=1e-6)


def test_frozen_batchnorm_freezes_only_batchnorm_and_restores_modes():
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(3)).train()
    model[2].eval()  # a caller's choice, kept
    model[0].weight.requires_grad_(False)  # likewise
    with frozen_batchnorm(model):
        assert [m.training for m in model] == [False, True, False] and model.training
        assert not any(p.requires_grad for p in model.parameters())
    assert [m.training for m in model] == [True, True, False]
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]


def _deepfool_l2(model, x, y):
    """Per-sample L2 size of the smallest adversarial DeepFool finds (foolbox), inf where it fails."""
    import foolbox as fb

    fmodel = fb.PyTorchModel(model.eval(), bounds=(0.0, 1.0))
    _, adv, success = fb.attacks.L2DeepFoolAttack(steps=100, overshoot=0.02)(fmodel, x, y, epsilons=None)
    size = (adv - x).flatten(1).norm(dim=1)
    return torch.where(success, size, torch.full_like(size, float("inf"))).detach().numpy()


def _retraining_ratio(tmp_path, *, seed: int) -> float:
    """Median DeepFool L2 needed after FGSM retraining over before it, on victims both models classify right, for
    the small fake-feature problem of data seed ``seed``; checks the retraining metrics on the way."""
    features = open_features(write_fake_features(tmp_path / str(seed), sources_per_class=16, noise=0.25, seed=seed))
    params = params_from_dict({"device": "cpu", "seed": seed, "train": {"epochs": 8, "batch_size": 16, "lr": 0.003},
                               "fgsm_retrain": {"epochs": 6, "epsilon": 0.1, "lr_scale": 1.0}})
    clean = train_victim(params=params, features=features, progress=False)
    outcome = fgsm_retrain(params=params, features=features, clean_model=clean.model, clean_config=clean.config,
                           progress=False)
    m = outcome.metrics
    assert FGSM_KEYS <= set(m) and m["epochs"] == 6
    assert m["clean_test_accuracy"] == pytest.approx(clean.metrics["test_accuracy"])
    assert m["accuracy_drop_points"] == pytest.approx(100 * (m["clean_test_accuracy"] - m["test_accuracy"]))
    x, y = features.test.load(), features.test.y
    ok = (clean.model(x).argmax(1) == y) & (outcome.model(x).argmax(1) == y)
    assert ok.sum() >= len(y) // 2
    return float(np.median(_deepfool_l2(outcome.model, x[ok], y[ok])) / np.median(_deepfool_l2(clean.model, x[ok], y[ok])))


@pytest.mark.slow
def test_fgsm_retraining_raises_the_perturbation_needed_over_seeds(tmp_path):
    """A finding, so it must hold over seeds, not for one picked seed: in at least 4 of 5 data-and-training seeds
    FGSM retraining raises the median DeepFool L2 a victim needs, and over the seeds the median rise is above 50 %
    (measured: 0.91, 1.18, 4.98, 1.72, 4.06; ~80 s on 2 cores)."""
    torch.set_num_threads(1)
    ratios = [_retraining_ratio(tmp_path, seed=seed) for seed in range(5)]
    print("DeepFool L2 needed, retrained / original, seeds 0-4:", [round(r, 2) for r in ratios])
    assert sum(r > 1.0 for r in ratios) >= 4 and np.median(ratios) > 1.5, ratios


def test_retraining_uses_the_models_own_optimiser_at_lr_scale(tmp_path):
    torch.set_num_threads(1)
    features = open_features(write_fake_features(tmp_path, sources_per_class=2))
    params = params_from_dict({
        "device": "cpu", "model": "resnet56",
        "train": {"epochs": 1, "schedule": "none", "by_model": {"resnet56": {"optimizer": "sgd", "lr": 0.02}}},
        "fgsm_retrain": {"epochs": 1, "lr_scale": 0.25},
    })
    clean = train_victim(params=params, features=features, progress=False)
    records = []
    fgsm_retrain(params=params, features=features, clean_model=clean.model, clean_config=clean.config,
                 on_epoch=records.append, progress=False)
    assert records[0]["lr"] == pytest.approx(0.005)


def test_control_is_retraining_with_the_clean_loss_only(tmp_path):
    torch.set_num_threads(1)
    features = open_features(write_fake_features(tmp_path, sources_per_class=2))
    base = {"device": "cpu", "train": {"epochs": 1, "schedule": "none"}, "fgsm_retrain": {"epochs": 1}}
    params = params_from_dict(base)
    clean = train_victim(params=params, features=features, progress=False)

    def weights(alpha_param, alpha_override):
        p = params_from_dict({**base, "fgsm_retrain": {"epochs": 1, "alpha": alpha_param}})
        out = fgsm_retrain(params=p, features=features, clean_model=clean.model, clean_config=clean.config,
                           progress=False, alpha=alpha_override)
        return torch.cat([t.flatten() for t in out.model.state_dict().values() if t.is_floating_point()])

    control = weights(0.0, 1.0)
    torch.testing.assert_close(control, weights(1.0, None))  # the override is fgsm_retrain.alpha = 1
    assert not torch.allclose(control, weights(0.0, None))  # and differs from FGSM retraining


def test_pgd_with_steps_covering_the_ball_twice_lands_where_fgsm_does_on_a_linear_model():
    """On the opposed linear model the loss gradient's sign is -sign(w) everywhere, so from any start in the ball,
    steps adding up to 2 eps reach the ball's corner x - eps sign(w) (then clipped): FGSM's x'."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(1, 4, 4, generator=gen)
    model = opposed_linear(w).train()
    x, y, eps = torch.rand(5, 1, 4, 4, generator=gen), torch.zeros(5, dtype=torch.long), 0.1
    x[0, 0, 0] = torch.tensor([0.0, 1.0, 0.05, 0.95])
    torch.manual_seed(0)
    pgd = craft_pgd(model, x, y, epsilon=eps, steps=8, rel_stepsize=0.25)
    torch.testing.assert_close(pgd, craft_fgsm(model, x, y, epsilon=eps), rtol=0, atol=1e-6)


def test_pgd_starts_at_random_within_the_ball_and_the_seed_fixes_the_start():
    gen = torch.Generator().manual_seed(4)
    model = opposed_linear(torch.randn(1, 4, 4, generator=gen))
    x, y, eps = 0.25 + 0.5 * torch.rand(64, 1, 4, 4, generator=gen), torch.zeros(64, dtype=torch.long), 0.1
    one_step = partial(craft_pgd, model, x, y, epsilon=eps, steps=1, rel_stepsize=0.01)
    torch.manual_seed(1)
    a = one_step()
    torch.manual_seed(1)
    b = one_step()
    torch.manual_seed(2)
    c = one_step()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().max() <= eps + 1e-6 and (a - x).abs().max() > 0.5 * eps  # the start, not one small step
    assert a.min() >= 0 and a.max() <= 1


def test_crafter_follows_the_method():
    params = params_from_dict({"fgsm_retrain": {"method": "pgd", "pgd_steps": 8, "pgd_rel_stepsize": 0.25,
                                                "epsilon": 0.1}})
    craft = crafter(params.fgsm_retrain)
    assert craft.func is craft_pgd and craft.keywords == {"epsilon": 0.1, "steps": 8, "rel_stepsize": 0.25}
    assert crafter(params_from_dict({}).fgsm_retrain).func is craft_fgsm


@pytest.mark.parametrize("key, value", [("method", "pgdd"), ("pgd_steps", 0), ("pgd_rel_stepsize", 0.0)])
def test_bad_pgd_settings_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=f"fgsm_retrain.{key}"):
        params_from_dict({"fgsm_retrain": {key: value}})


def test_pgd_retraining_runs_and_reports_the_same_metrics(tmp_path):
    features = open_features(write_fake_features(tmp_path, sources_per_class=4, noise=0.25, seed=0))
    params = params_from_dict({"device": "cpu", "train": {"epochs": 1, "batch_size": 16},
                               "fgsm_retrain": {"epochs": 1, "method": "pgd", "pgd_steps": 2}})
    clean = train_victim(params=params, features=features, progress=False)
    outcome = fgsm_retrain(params=params, features=features, clean_model=clean.model, clean_config=clean.config,
                           progress=False)
    assert FGSM_KEYS <= set(outcome.metrics) and outcome.metrics["epochs"] == 1
    assert outcome.config["params"]["fgsm_retrain"]["method"] == "pgd"
