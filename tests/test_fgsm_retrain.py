"""FGSM retraining (Eq. 14): the loss at alpha = 0 and 1, and a measurable robustness gain."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advaudio.attacks.fgsm import fgsm_examples
from advaudio.config import params_from_dict
from advaudio.models import build_model
from advaudio.features.store import load_features
from advaudio.training.fake_features import write_fake_features
from advaudio.training.fgsm_retrain import fgsm_loss, fgsm_retrain
from advaudio.training.run import train_victim

FGSM_KEYS = {"test_accuracy", "clean_test_accuracy", "accuracy_drop_points", "accuracy_drop_relative",
             "epochs", "seconds", "images_per_second", "n_train"}


def test_loss_matches_eq14_at_both_ends():
    model = build_model("resnet56", n_classes=3, input_shape=(1, 8, 8)).eval()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    clean, _ = fgsm_loss(alpha=1.0, epsilon=0.1)(model, x, y)
    torch.testing.assert_close(clean, F.cross_entropy(model(x), y))
    adv, _ = fgsm_loss(alpha=0.0, epsilon=0.1)(model, x, y)
    torch.testing.assert_close(adv, F.cross_entropy(model(fgsm_examples(model, x, y, epsilon=0.1)), y))
    half, _ = fgsm_loss(alpha=0.5, epsilon=0.1)(model, x, y)
    torch.testing.assert_close(half, 0.5 * clean + 0.5 * adv)


def _deepfool_l2(model, x, y):
    """Per-sample L2 size of the smallest adversarial DeepFool finds (foolbox), inf where it fails."""
    import foolbox as fb

    fmodel = fb.PyTorchModel(model.eval(), bounds=(0.0, 1.0))
    _, adv, success = fb.attacks.L2DeepFoolAttack(steps=100, overshoot=0.02)(fmodel, x, y, epsilons=None)
    size = (adv - x).flatten(1).norm(dim=1)
    return torch.where(success, size, torch.full_like(size, float("inf"))).detach().numpy()


def test_fgsm_retraining_raises_the_perturbation_needed(tmp_path):
    torch.set_num_threads(1)
    features = load_features(write_fake_features(tmp_path, sources_per_class=16, noise=0.25))
    params = params_from_dict({"device": "cpu", "train": {"epochs": 8, "batch_size": 16, "lr": 0.003},
                               "fgsm_retrain": {"epochs": 6, "epsilon": 0.1, "lr_scale": 1.0}})
    clean = train_victim(params=params, features=features, progress=False)
    outcome = fgsm_retrain(params=params, features=features, clean_model=clean.model, clean_config=clean.config,
                           progress=False)
    m = outcome.metrics
    assert FGSM_KEYS <= set(m) and m["epochs"] == 6
    assert m["clean_test_accuracy"] == pytest.approx(clean.metrics["test_accuracy"])
    assert m["accuracy_drop_points"] == pytest.approx(100 * (m["clean_test_accuracy"] - m["test_accuracy"]))
    x, y = features.test.x, features.test.y
    ok = (clean.model(x).argmax(1) == y) & (outcome.model(x).argmax(1) == y)
    assert ok.sum() >= len(y) // 2
    before = np.median(_deepfool_l2(clean.model, x[ok], y[ok]))
    after = np.median(_deepfool_l2(outcome.model, x[ok], y[ok]))
    print(f"DeepFool L2 needed (median): clean {before:.3f}, retrained {after:.3f}; accuracy "
          f"{m['clean_test_accuracy']:.3f} -> {m['test_accuracy']:.3f}")
    assert after > 1.2 * before, (before, after)


def test_retraining_uses_the_models_own_optimiser_at_lr_scale(tmp_path):
    torch.set_num_threads(1)
    features = load_features(write_fake_features(tmp_path, sources_per_class=2))
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
    features = load_features(write_fake_features(tmp_path, sources_per_class=2))
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
