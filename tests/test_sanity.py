"""The sanity checks and the model-side counters: each check is shown to fail on a broken input."""

import numpy as np
import torch

from advaudio.evaluation.attack_run import load_victim
from advaudio.evaluation.budget import BudgetResult
from advaudio.evaluation.counting import CountingModule
from advaudio.evaluation.sanity import (
    blackbox_queries_only,
    bounded_within_bound,
    iterative_ge_fgsm,
    no_zero_adversarials,
    nondecreasing,
    raw_outputs_finite,
    raw_outputs_in_range,
    whitebox_ge_blackbox,
)
from advaudio.models import build_model
from advaudio.models.checkpoint import make_config, save_checkpoint


def result(*, x, adv, success, black_box=False, **kw) -> BudgetResult:
    adv = np.asarray(adv, dtype=np.float32)
    l2 = np.where(success, np.linalg.norm((adv - x).reshape(len(x), -1), axis=1), np.inf)
    fields = dict(name="a", adv=adv, l2=l2, success=np.asarray(success), level=1, n_levels=1, gradient_calls=0,
                  forward_calls=0, queries=0, seconds=0.0, black_box=black_box)
    fields.update(kw)
    return BudgetResult(**fields)


X = np.full((3, 1, 2, 2), 0.5, dtype=np.float32)


def test_iterative_ge_fgsm_fails_when_fgsm_is_stronger_somewhere():
    assert iterative_ge_fgsm(bim_rates=[0.2, 0.5, 0.9], fgsm_rates=[0.1, 0.5, 0.6])
    assert not iterative_ge_fgsm(bim_rates=[0.2, 0.5, 0.9], fgsm_rates=[0.1, 0.6, 0.6])
    assert nondecreasing([0.1, 0.1, 0.4]) and not nondecreasing([0.1, 0.3, 0.2])


def test_whitebox_ge_blackbox_fails_when_the_black_box_is_ahead_at_one_epsilon():
    curves = {"bim_b": np.array([0, 0.5, 1.0]), "cw": np.array([0, 0.2, 0.9]), "pia": np.array([0, 0.4, 1.0])}
    assert whitebox_ge_blackbox(curves=curves, white=["bim_b", "cw"], black=["pia"])
    curves["pia"] = np.array([0, 0.6, 1.0])
    assert not whitebox_ge_blackbox(curves=curves, white=["bim_b", "cw"], black=["pia"])


def test_bounded_within_bound_fails_on_an_adversarial_outside_the_ball():
    adv = X.copy()
    adv[0, 0, 0, 0] += 0.1
    ok = {"a": result(x=X, adv=adv, success=[True, False, False])}
    assert bounded_within_bound(x=X, results=ok, bound=0.1)
    assert not bounded_within_bound(x=X, results=ok, bound=0.09)
    # a stored norm that lies about the adversarial is caught by the recomputed one
    lying = result(x=X, adv=adv, success=[True, False, False])
    lying.l2[0] = 0.05
    assert not bounded_within_bound(x=X, results={"a": lying}, bound=0.09)


def test_raw_output_checks_read_the_attack_outputs_not_the_stored_adversarials():
    # verification replaced the failed rows by x, so the stored adversarials look clean either way
    clean = result(x=X, adv=X, success=[False] * 3)
    assert raw_outputs_finite({"a": clean}) and raw_outputs_in_range({"a": clean})
    nan = result(x=X, adv=X, success=[False] * 3, raw_nonfinite=1)
    out = result(x=X, adv=X, success=[False] * 3, raw_out_of_range=2)
    assert not raw_outputs_finite({"a": clean, "b": nan}) and not raw_outputs_in_range({"a": clean, "b": out})


def test_no_zero_adversarials_fails_on_a_counted_all_zero_image():
    adv = X.copy()
    adv[1] = 0.0
    assert no_zero_adversarials(x=X, results={"a": result(x=X, adv=adv, success=[True, False, True])})
    assert not no_zero_adversarials(x=X, results={"a": result(x=X, adv=adv, success=[True, True, True])})


def test_blackbox_queries_only_fails_on_gradients_or_unreported_queries():
    honest = result(x=X, adv=X, success=[False] * 3, black_box=True, queries=30, forward_calls=30)
    assert blackbox_queries_only({"pia": honest})
    checked = result(x=X, adv=X, success=[False] * 3, black_box=True, queries=30, forward_calls=33, success_checks=3)
    assert blackbox_queries_only({"pia": checked})  # foolbox's success check of each output is accounted for
    unchecked = result(x=X, adv=X, success=[False] * 3, black_box=True, queries=30, forward_calls=33)
    assert not blackbox_queries_only({"pia": unchecked})
    grads = result(x=X, adv=X, success=[False] * 3, black_box=True, queries=30, forward_calls=30, gradient_calls=3)
    hidden = result(x=X, adv=X, success=[False] * 3, black_box=True, queries=30, forward_calls=45)
    assert not blackbox_queries_only({"pia": grads}) and not blackbox_queries_only({"pia": hidden})
    white = result(x=X, adv=X, success=[False] * 3, gradient_calls=10, forward_calls=10)
    assert blackbox_queries_only({"cw": white})


def test_counting_counts_gradients_only_when_a_backward_pass_reaches_the_model():
    model = CountingModule(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval())
    x = torch.rand(5, 1, 2, 2, requires_grad=True)
    model(x)  # autograd on, but nobody differentiates: a query, not a gradient
    assert (model.forward_samples, model.gradient_samples) == (5, 0)
    model(x).sum().backward()
    assert (model.forward_samples, model.gradient_samples) == (10, 5)
    with torch.no_grad():
        model(torch.rand(3, 1, 2, 2))
    assert (model.forward_samples, model.gradient_samples) == (13, 5)


def test_attack_victims_have_frozen_weights(tmp_path):
    model = build_model("alexnet", n_classes=3, input_shape=[1, 32, 32])
    config = make_config(model="alexnet", n_classes=3, class_names=list("abc"), input_shape=[1, 32, 32],
                         representation="stft", scaling={"lo": -80.0, "hi": 0.0}, params={"seed": 0})
    save_checkpoint(tmp_path / "m.pt", model=model, config=config)
    victim = load_victim(tmp_path / "m.pt", device=torch.device("cpu"), meta=config)
    assert not victim.training and not any(p.requires_grad for p in victim.parameters())
    x = torch.rand(2, 1, 32, 32, requires_grad=True)
    victim(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in victim.parameters())
