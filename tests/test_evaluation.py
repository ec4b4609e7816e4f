"""Known answers for fooling rates, curves, AUC, size measures, verification and the sanity checks."""

import numpy as np
import pytest
import torch

from advaudio.config import params_from_dict
from advaudio.errors import ConfigError
from advaudio.evaluation.metrics import (
    attack_summary,
    curve_auc,
    db_ratio,
    epsilon_grid,
    fooling_rate,
    l2_norms,
    rms,
    robustness_curve,
)
from advaudio.evaluation.sanity import eval_and_deterministic, nonzero_input_gradients, outputs_are_logits
from advaudio.evaluation.verify import verify_adversarials


def test_fooling_rate_and_curve_known_answers():
    l2 = np.array([0.5, 1.0, 2.0, np.inf])
    success = np.array([True, True, True, False])
    assert fooling_rate(success) == 0.75
    eps = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(robustness_curve(l2=l2, success=success, epsilons=eps), [0, 0.25, 0.5, 0.5, 0.75])
    # an unverified success never counts, whatever its L2
    np.testing.assert_allclose(robustness_curve(l2=l2, success=~success, epsilons=eps), [0, 0, 0, 0, 0])


def test_auc_known_answers():
    eps = np.linspace(0, 2, 201)
    assert curve_auc(epsilons=eps, fooling_rates=np.ones_like(eps)) == pytest.approx(1.0)
    assert curve_auc(epsilons=eps, fooling_rates=eps / 2) == pytest.approx(0.5)
    assert curve_auc(epsilons=eps, fooling_rates=(eps >= 1).astype(float)) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="start at 0"):
        curve_auc(epsilons=np.array([0.1, 0.2]), fooling_rates=np.array([0.0, 1.0]))


def test_size_measures():
    x = np.zeros((2, 1, 2, 2))
    adv = x.copy()
    adv[0, 0, 0, 0] = 3.0
    adv[1] = 1.0
    np.testing.assert_allclose(l2_norms(x=x, adv=adv), [3.0, 2.0])
    np.testing.assert_allclose(rms(l2=np.array([2.0]), n_elements=4), [1.0])
    np.testing.assert_allclose(db_ratio(l2=np.array([0.1]), x=np.ones((1, 1, 1, 1))), [-20.0])


def test_attack_summary_omits_values_without_successes():
    x = np.full((2, 1, 2, 2), 0.5)
    eps = np.linspace(0, 1, 11)
    out = attack_summary(x=x, l2=np.array([np.inf, np.inf]), success=np.array([False, False]), epsilons=eps, bound=3.0)
    assert out == {"fooling_rate": 0.0, "fr_at_bound": 0.0, "auc": 0.0}
    out = attack_summary(x=x, l2=np.array([0.2, 0.4]), success=np.array([True, True]), epsilons=eps, bound=0.3)
    assert out["mean_l2"] == pytest.approx(0.3) and out["fr_at_bound"] == 0.5 and out["mean_rms"] == pytest.approx(0.15)


def test_epsilon_grid():
    g = epsilon_grid(l2_arrays=[np.array([1.0, np.inf]), np.array([4.0])], points=5, curve_max=0.0)
    np.testing.assert_allclose(g, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(epsilon_grid(l2_arrays=[], points=3, curve_max=2.0), [0, 1, 2])


def test_verification_reclassifies_and_rejects_out_of_range():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]))
        model[1].bias.zero_()
    x = torch.full((3, 1, 2, 2), 0.5)
    adv = x.clone()
    adv[1, 0, 0, 0] = 0.0  # logit0 = logit1 = 0 -> argmax 0: not fooled
    adv[2, 0, 0, 0] = -0.5  # fooled but outside [0, 1]
    labels = torch.zeros(3, dtype=torch.long)
    ok, l2 = verify_adversarials(model=model, x=x, adv=adv, labels=labels, targets=None)
    assert ok.tolist() == [False, False, False]
    np.testing.assert_allclose(l2.numpy(), [0.0, 0.5, 1.0])
    model[1].bias.data = torch.tensor([0.0, 0.1])
    ok, _ = verify_adversarials(model=model, x=x, adv=adv, labels=labels, targets=torch.ones(3, dtype=torch.long))
    assert ok.tolist() == [False, True, False]


def test_sanity_checks_catch_bad_models():
    x = torch.rand(4, 1, 3, 3)
    good = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 3)).eval()
    assert eval_and_deterministic(model=good, x=x) and outputs_are_logits(model=good, x=x)
    assert nonzero_input_gradients(model=good, x=x, labels=torch.zeros(4, dtype=torch.long))
    dropout = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(9, 3)).train()
    assert not eval_and_deterministic(model=dropout, x=x)
    probs = torch.nn.Sequential(good, torch.nn.Softmax(dim=1))
    assert not outputs_are_logits(model=probs, x=x)
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 3), torch.nn.Hardtanh(-1e-3, 1e-3)).eval()
    with torch.no_grad():
        flat[1].bias.fill_(5.0)  # saturated: zero input gradient
    assert not nonzero_input_gradients(model=flat, x=x, labels=torch.zeros(4, dtype=torch.long))


def test_config_rejects_bad_ladders():
    with pytest.raises(ConfigError, match="attack.ladders.cw"):
        params_from_dict({"attack": {"ladders": {"cw": []}}})
    with pytest.raises(ConfigError, match="attack.ladders.cw"):
        params_from_dict({"attack": {"ladders": {"cw": {"c": 1}}}})


def test_recheck_counts_only_valid_adversarials_of_the_right_class():
    from advaudio.evaluation.recheck import rechecked_success

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(3, 4))  # class = argmax of the first three features
    x = np.zeros((4, 1, 2, 2), dtype=np.float32)
    x[:, 0, 0, 0] = 0.6  # every victim starts as class 0
    adv = x.copy()
    adv[0, 0, 0, 1] = 0.9  # -> class 1 (the target)
    adv[1, 0, 1, 0] = 0.9  # -> class 2 (wrong, not the target)
    adv[2, 0, 0, 1] = 1.5  # -> class 1 but outside [0, 1]
    labels = np.zeros(4, dtype=np.int64)
    targets = np.ones(4, dtype=np.int64)
    targeted = rechecked_success(model=model, x=x, adv=adv, labels=labels, targets=targets)
    assert targeted.tolist() == [True, False, False, False]
    untargeted = rechecked_success(model=model, x=x, adv=adv, labels=labels, targets=None)
    assert untargeted.tolist() == [True, True, False, False]
    bounded = rechecked_success(model=model, x=x, adv=adv, labels=labels, targets=None, bound=0.5)
    assert bounded.tolist() == [False, False, False, False]
