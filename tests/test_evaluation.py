"""Known answers for fooling rates, curves, AUC, size measures, verification and the sanity checks."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from advaudio.config import params_from_dict
from advaudio.errors import ConfigError
from advaudio.evaluation.metrics import (
    attack_summary,
    curve_auc,
    db_ratio,
    curve_end,
    epsilon_grid,
    fooling_rate,
    fr_at_bound,
    l2_norms,
    rms,
    robustness_curve,
)
from advaudio.evaluation.ball import BOUND_RTOL, project_l2, within_bound
from advaudio.evaluation.sanity import eval_and_deterministic, nonzero_input_gradients, outputs_are_logits
from advaudio.evaluation.stage_commands import stage_options
from stage_trees import REPO, make_dvc_project
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
    assert {k: v for k, v in out.items() if "_ci_" not in k} == {"fooling_rate": 0.0, "fr_at_bound": 0.0, "auc": 0.0}
    assert out["fooling_rate_ci_low"] == 0.0 and 0.5 < out["fooling_rate_ci_high"] < 1.0  # Wilson 0 of 2
    out = attack_summary(x=x, l2=np.array([0.2, 0.4]), success=np.array([True, True]), epsilons=eps, bound=0.3)
    assert out["mean_l2"] == pytest.approx(0.3) and out["fr_at_bound"] == 0.5 and out["mean_rms"] == pytest.approx(0.15)


def test_epsilon_grid_is_fixed_by_the_parameters():
    np.testing.assert_allclose(epsilon_grid(end=4.0, points=5), [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="end > 0"):
        epsilon_grid(end=0.0, points=5)
    # bounded comparison: up to the bound; unbounded: curve_max scaled like the bound (study 3 -> 0.0875 here)
    assert curve_end(bounded=True, bound_l2=0.0875, curve_max=150.0, bound=3.0) == 0.0875
    assert curve_end(bounded=False, bound_l2=0.0875, curve_max=150.0, bound=3.0) == pytest.approx(4.375)


def test_one_attacks_auc_does_not_depend_on_the_others():
    x = np.full((4, 1, 2, 2), 0.5)
    l2 = np.array([0.1, 0.2, 0.3, np.inf])
    grid = epsilon_grid(end=curve_end(bounded=False, bound_l2=0.1, curve_max=10.0, bound=1.0), points=11)
    alone = attack_summary(x=x, l2=l2, success=np.isfinite(l2), epsilons=grid, bound=0.1)["auc"]
    # the stage's other attacks found a perturbation of 50: the grid, hence this AUC, must not move
    assert grid[-1] == pytest.approx(1.0) and alone == pytest.approx(0.6375)


def test_fr_at_bound_counts_projected_norms_a_hair_above_the_bound():
    bound = 0.0875
    x = np.full((3, 1, 2, 2), 0.5)
    l2 = np.array([bound * (1 + 3e-7), bound * (1 + 0.5 * BOUND_RTOL), bound * 1.001])
    assert fr_at_bound(l2=l2, success=np.ones(3, dtype=bool), bound=bound) == pytest.approx(2 / 3)
    out = attack_summary(x=x, l2=l2, success=np.ones(3, dtype=bool), epsilons=np.linspace(0, 1, 5), bound=bound)
    assert out["fr_at_bound"] == pytest.approx(2 / 3)


def test_float32_projection_lands_within_the_predicate_but_not_always_below_the_radius():
    g = torch.Generator().manual_seed(0)
    x = torch.rand((64, 1, 128, 128), generator=g)
    adv = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    bound = 0.0875 * 16
    projected = project_l2(x, adv, bound)
    l2 = l2_norms(x=x.numpy(), adv=projected.numpy())
    assert within_bound(l2, bound).all()
    assert (l2 > bound).any()  # why the predicate needs its tolerance
    assert projected.min() >= 0 and projected.max() <= 1
    inside = x + 0.5 * (adv - x) * bound / l2_norms(x=x.numpy(), adv=adv.numpy()).max()
    torch.testing.assert_close(project_l2(x, inside.float(), bound), inside.float())


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


# --- the attack stages read the test split streamed (evaluation/attack_run.py, evaluation/recheck.py) ---

N_VICTIMS = 6


def _stage_root(root):
    """A tiny attack-stage tree: fake features (16 test clips stored at 24 x 20 in shards of 5, read at
    16 x 16), placeholder checkpoints (the victim comes from :func:`_band_victim`) and params.yaml."""
    import yaml

    from advaudio.training.fake_features import write_fake_features

    write_fake_features(root / "build/features", sources_per_class=16, size=(16, 16), native_size=(24, 20),
                        clips_per_shard=5)
    (root / "build/model").mkdir(parents=True)
    for name in ("model.pt", "retrained.pt"):
        (root / "build/model" / name).write_bytes(b"placeholder: the tests patch load_victim")
    ladders = {
        "bim_b": [{"epsilon": 1.5, "steps": 5, "rel_stepsize": 0.2}],
        "deepfool": [{"steps": 20}],
        "pia": [{"epsilon": e, "steps": 10, "samples": 10, "chunk": 4} for e in (0.05, 0.3)],
    }
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params.update(device="cpu", seed=3)
    reference = {"apgd_ce": [{"epsilon": 1.5, "steps": 5}]}  # a reference attack rides along (attack.reference)
    params["attack"].update({
        "attacks": list(ladders), "reference": list(reference), "ladders": {**ladders, **reference},
        "n_victims": N_VICTIMS, "n_examples": 2, "batch_size": 4,
        "target_fooling_rate": 1.0, "bound": 1.0, "bound_scaling": "none", "curve_points": 5})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    make_dvc_project(root)  # recheck reads each stage's paths from dvc.yaml
    return root


def _patch(monkeypatch, name, value):
    """Replace ``name`` where the victims stage and the attack stages look it up."""
    from advaudio.evaluation import attack_run, victims

    for module in (attack_run, victims):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, value)


def _band_victim(path, *, device, meta=None):
    from toy_attack_models import band_model

    return band_model(size=(16, 16)).to(device)


def _band_checkpoint(path, *, device):
    """load_checkpoint's answer for a placeholder checkpoint: the band model, with the features' own meta as its
    config (so that check_matches_features passes)."""
    meta = json.loads((Path(path).parent.parent / "features" / "meta.json").read_text())
    return _band_victim(path, device=device), meta


def _run_stage(root, modes=("original", "retrained_bounded")):
    """The victims stage, then run_mode for ``modes`` in order with the paths and bound dvc.yaml gives each stage,
    writing what the next stage reads; ``{mode: ModeRun}`` (each with the victims as ``victims``)."""
    from advaudio.config import load_params
    from advaudio.evaluation.attack_run import AttackPaths, run_mode
    from advaudio.evaluation.victims import draw_victims
    from advaudio.io import save_npz, write_json

    torch.set_num_threads(1)  # tiny tensors: threads only contend
    params = load_params(root / "params.yaml")
    victims_args = stage_options("victims", root=REPO)  # the paths dvc.yaml gives the stage
    victims = draw_victims(params=params, features=root / victims_args["features"],
                           checkpoint=root / victims_args["checkpoint"])
    save_npz(root / victims_args["out"], **victims)
    runs = {}
    for mode in modes:
        args = stage_options(f"attack@{mode}", root=REPO)
        paths = AttackPaths(features=root / args["features"], checkpoint=root / args["checkpoint"],
                            victims=root / args["victims"], profiles=root / "profiles")
        run = runs[mode] = run_mode(params=params, stage=f"attack@{mode}", paths=paths,
                                    bounded=args["bounded"] == "true")
        run.victims = victims
        save_npz(root / args["out"] / "results.npz", **run.results)
        write_json(root / args["metrics"], run.metrics)
    return runs


def _same_outputs(a, b):
    for field in ("results", "examples", "victims", "curves"):
        x, y = getattr(a, field), getattr(b, field)
        assert sorted(x) == sorted(y), field
        for key in x:
            assert x[key].dtype == y[key].dtype, (field, key)
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"{field}:{key}")

    def untimed(metrics):  # per-attack entries, the reference attacks' included, less their timings
        return {k: untimed(e) if isinstance(e, dict) else e for k, e in metrics.items() if k != "seconds"}

    assert untimed(a.metrics) == untimed(b.metrics)


def test_attack_stages_stream_the_test_split_with_the_materialised_paths_results(tmp_path, monkeypatch):
    from advaudio.evaluation import attack_run
    from advaudio.features.reader import TensorSplit

    _patch(monkeypatch, "load_victim", _band_victim)
    streamed = _run_stage(_stage_root(tmp_path / "streamed"))
    assert streamed["original"].metrics["pia"]["fooling_rate"] > 0 and streamed["original"].metrics["pia"]["queries"] > 0

    # the materialised path the stages took before: the whole split as one tensor (what load_split gave),
    # predictions over its slices, victims indexed from it and the tensor itself as PIA's starting pool
    real_open = attack_run.open_split

    def materialised(directory, name, *, meta):
        reader = real_open(directory, name, meta=meta)
        return TensorSplit(x=reader.load(), y=reader.y, fold=reader.fold, original=reader.original)

    _patch(monkeypatch, "open_split", materialised)
    monkeypatch.setattr(attack_run, "ReaderPool", lambda reader, *, batch_size: reader.x)
    whole = _run_stage(_stage_root(tmp_path / "whole"))
    for mode in streamed:
        _same_outputs(streamed[mode], whole[mode])


def _set_attack_params(root, **attack):
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["attack"].update({"reference": [], **attack})  # the reference attacks only where a test asks
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_more_victims_than_the_test_split_is_refused_by_name(tmp_path, monkeypatch):

    _patch(monkeypatch, "load_victim", _band_victim)
    root = _stage_root(tmp_path)
    _set_attack_params(root, n_victims=100000)
    with pytest.raises(ConfigError, match=r"attack.n_victims = 100000 exceeds the test split's 16 clips"):
        _run_stage(root, modes=("original",))


def test_fewer_correct_clips_than_victims_asked_is_warned_and_recorded(tmp_path, monkeypatch, capsys):
    from advaudio.evaluation import victims

    real_predict = victims.predict_batches

    def half_wrong(model, batches, **kwargs):
        logits = real_predict(model, batches, **kwargs).clone()
        logits[::2] = logits[::2].roll(1, dims=1)  # every other clip's top class moves to another class
        return logits

    _patch(monkeypatch, "load_victim", _band_victim)
    _patch(monkeypatch, "predict_batches", half_wrong)
    root = _stage_root(tmp_path)
    _set_attack_params(root, n_victims=16, attacks=["deepfool"])
    metrics = _run_stage(root, modes=("original",))["original"].metrics
    assert metrics["n_victims_requested"] == 16 and metrics["n_victims"] <= 8
    err = capsys.readouterr().err
    assert f"attack.n_victims = 16, but only {metrics['n_victims']} of the 16 test clips are classified correctly" in err


def test_attack_stages_and_recheck_never_hold_the_whole_test_split(tmp_path, monkeypatch):
    from advaudio.evaluation import recheck
    from advaudio.features.reader import ShardSplit, SplitReader

    root = _stage_root(tmp_path)
    gathered = []
    real_gather = ShardSplit._gather

    def gather(self, rows, *, pin):
        gathered.append(len(rows))
        return real_gather(self, rows, pin=pin)

    def load(self, *args, **kwargs):
        raise AssertionError("the attack stages must not materialise a split")

    monkeypatch.setattr(ShardSplit, "_gather", gather)
    monkeypatch.setattr(SplitReader, "load", load)
    _patch(monkeypatch, "load_victim", _band_victim)
    monkeypatch.setattr(recheck, "load_checkpoint", _band_checkpoint)
    runs = _run_stage(root)
    n_test = len(runs["original"].results["test_labels"])
    # batches of 4 (attack.batch_size; PIA's chunk of 4 keeps the pool's at 4), the 6 victims, the picked starts
    assert n_test == 16 and max(gathered) == N_VICTIMS < n_test
    assert sum(gathered) > 3 * n_test  # predictions once and the pool once per PIA rung, all of it streamed
    for mode in runs:
        rates = recheck.recheck_mode(mode=mode, root=root)
        assert "apgd_ce" in rates  # the reference attack is re-checked too
        assert rates and all(reported == rechecked for reported, rechecked in rates.values()), rates


def test_an_attack_seed_depends_on_the_seed_and_the_attack_name_only():
    from advaudio.evaluation.attack_run import attack_seed

    pia = attack_seed(seed=3, name="pia")
    assert pia == 42_558_291  # CRC-32 of "3/pia": fixed forever, or every PIA result changes
    assert len({attack_seed(seed=3, name=n) for n in ("bim_a", "bim_b", "cw", "deepfool", "jsma", "pia")}) == 6
    assert attack_seed(seed=4, name="pia") != pia


def test_removing_an_attack_leaves_the_others_results_byte_identical(tmp_path, monkeypatch):
    """Issue 18: PIA's per-victim results do not depend on which attacks run before it (its seed once did)."""
    _patch(monkeypatch, "load_victim", _band_victim)
    every = _run_stage(_stage_root(tmp_path / "every"), modes=("original",))["original"].results
    root = _stage_root(tmp_path / "pia")
    _set_attack_params(root, attacks=["pia"])
    alone = _run_stage(root, modes=("original",))["original"].results
    for key in ("pia_l2", "pia_success", "pia_adv"):
        assert alone[key].tobytes() == every[key].tobytes(), key
