"""The cost planner: known-answer projections from given per-item costs, and the command on a tiny profile."""

import json
from pathlib import Path

import pytest
import yaml

from advaudio.config import params_from_dict
from advaudio.plan.__main__ import cache_links, main
from advaudio.plan.facts import dataset_facts
from advaudio.plan.measure import ClipCosts, ModelCosts
from advaudio.plan.project import AttackCalls, CellPlan, grid_disk_bytes, ladder_calls, measured_calls, project_cell
from stage_trees import make_dvc_project

REPO = Path(__file__).resolve().parents[1]

LADDERS = {
    "bim_b": [{"epsilon": 1.0, "steps": 10}, {"epsilon": 2.0, "steps": 20}],
    "deepfool": [{"steps": 5}],
    "pia": [{"epsilon": 0.1, "steps": 4, "samples": 10}],
}


def params(**over):
    raw = {"synth": {"n_classes": 4, "clips_per_class": 10, "n_folds": 5}, "augment": {"scales": [0.9, 1.1]},
           "attack": {"attacks": list(LADDERS), "reference": [], "ladders": LADDERS, "n_victims": 8}, **over}
    return params_from_dict(raw)


def test_synth_facts_follow_the_params():
    facts = dataset_facts(params=params(), dataset="synth")
    # 4 classes x 10 clips = 40; official folds: 1 of 5 is the test split, 40 / 5 = 8; the 32 training clips plus
    # their 2 pitch shifts = 96 rows; the training pool is the other 4 folds
    assert (facts.n_clips, facts.n_test, facts.n_train_rows, facts.pool_folds) == (40, 8, 96, 4)
    assert facts.clip_samples == 44100  # synth's default 2 s at 22.05 kHz
    # ESC-50 under the paper's protocol: 30 % of 2000 = 600 test clips; 1400 x 3 = 4200 rows; 5 CV folds
    esc = dataset_facts(params=params(split={"protocol": "paper"}), dataset="esc50")
    assert (esc.n_test, esc.n_train_rows, esc.pool_folds) == (600, 4200, 5)
    # UrbanSound8K, official: 8732 / 10 = 873.2 -> 873 test clips; (8732 - 873) x 3 = 23577 rows; 9 pool folds
    us8k = dataset_facts(params=params(), dataset="urbansound8k")
    assert (us8k.n_test, us8k.n_train_rows, us8k.pool_folds, us8k.clip_samples) == (873, 23577, 9, 88200)


def test_ladder_upper_bound_counts_every_rung_in_full():
    calls = ladder_calls(params=params(), bounded=False, n_classes=4, n_features=64)
    # gradients: bim_b 10 + 20 steps; deepfool 5 steps x 3 classes (all but the top one) = 15; pia none: 45.
    # forwards: bim_b 1 per rung (its last iterate) = 2; deepfool 0; pia 4 steps x (10 samples + 3 lr_tries) = 52;
    # + per rung foolbox's success check and the verifying forward (4 rungs x 2) = 8: 62
    assert (calls.gradients, calls.forwards, calls.calibrated) == (45, 62, False)


def test_reference_attacks_count_like_the_others():
    ladders = {**LADDERS, "apgd_ce": [{"epsilon": 1.0, "steps": 9}]}
    with_apgd = params(attack={"attacks": list(LADDERS), "reference": ["apgd_ce"], "ladders": ladders})
    calls = ladder_calls(params=with_apgd, bounded=False, n_classes=4, n_features=64)
    # APGD: one gradient at the start and one per step (10), one forward for foolbox's success check, plus the
    # per-rung success check and verifying forward (2)
    assert (calls.gradients, calls.forwards) == (45 + 10, 62 + 1 + 2)
    metrics = {"n_victims": 1, "bim_b": {"gradient_calls": 30, "forward_calls": 30, "n_levels": 2},
               "deepfool": {"gradient_calls": 15, "forward_calls": 15, "n_levels": 1},
               "pia": {"gradient_calls": 0, "forward_calls": 50, "n_levels": 1},
               "reference": {"apgd_ce": {"gradient_calls": 10, "forward_calls": 11, "n_levels": 1}}}
    assert measured_calls(metrics=metrics, params=with_apgd).gradients == 55
    del metrics["reference"]
    assert measured_calls(metrics=metrics, params=with_apgd) is None  # a run without APGD: not this configuration


def test_calls_of_a_matching_previous_run_are_used_per_victim():
    metrics = {"n_victims": 8, "bim_b": {"gradient_calls": 80, "forward_calls": 96, "n_levels": 2},
               "deepfool": {"gradient_calls": 40, "forward_calls": 40, "n_levels": 1},
               "pia": {"gradient_calls": 0, "forward_calls": 800, "n_levels": 1}}
    calls = measured_calls(metrics=metrics, params=params())
    # gradients (80 + 40 + 0) / 8 = 15; forward-only calls are forward_calls less gradient_calls:
    # ((96 - 80) + (40 - 40) + (800 - 0)) / 8 = 102
    assert calls.calibrated and calls.gradients == 15 and calls.forwards == 102
    metrics["pia"]["n_levels"] = 3  # another ladder: not this configuration
    assert measured_calls(metrics=metrics, params=params()) is None


CLIP = ClipCosts(synth_seconds=0.5, pitch_shift_seconds=0.25, feature_seconds=0.125, stored_bytes=1000)
NET = ModelCosts(train_seconds=0.01, gradient_seconds=0.004, forward_seconds=0.001, backward_bytes=10,
                 weight_bytes=100, batch_size=4)
MEASURED = AttackCalls(gradients=10, forwards=20, calibrated=True)


def project(p=None, *, model="resnet56", clip=CLIP, net=NET, calls=MEASURED, **over):
    """``project_cell`` on ``params()``'s synth facts with the costs above: 3 epochs, 2 workers, the CPU."""
    p = p or params()
    kwargs = dict(params=p, model=model, facts=dataset_facts(params=p, dataset="synth"), clip=clip, net=net,
                  n_features=64, train_epochs=3, attack_calls={"original": calls, "retrained": calls},
                  base_ram_bytes=1000, device_is_cuda=False, workers=2)
    return project_cell(**{**kwargs, **over})


def test_cell_projection_known_answer():
    """Every number below is worked out by hand from what the stages do, not from the planner's code. The cell:
    40 clips (8 test, 32 training, 96 training rows with 2 pitch shifts), 4 pool folds, 3 epochs, 2 workers."""
    plan = project()
    assert plan.seconds == pytest.approx({
        "synth": 20.0,           # 40 clips x 0.5 s
        "augment": 8.0,          # 32 training clips x 2 scales = 64 shifts x 0.25 s = 16 s, over 2 workers
        "spectrogram": 6.5,      # (96 rows + 8 test clips) x 0.125 s = 13 s, over 2 workers
        # the validation fold (1 of 4: 8 clips, 24 rows) is held out: 72 rows x 0.01 s = 0.72 s of steps per
        # epoch + classifying its 8 originals, 0.008 s; 3 epochs = 2.184 s; + classifying 8 test clips, 0.008 s
        "train": 2.192,
        # 5 epochs (the default) x 72 rows = 360 steps, each an FGSM gradient and a training step:
        # 360 x (0.004 + 0.01) = 5.04 s; + test accuracy before and after, 2 x 8 x 0.001 = 0.016 s
        "fgsm_retrain": 5.056,
        "clean_finetune": 3.616,  # the same 360 steps without the FGSM gradient: 3.6 s; + 0.016 s
        # the same 360 steps, each crafting with PGD's 7 gradients (the default pgd_steps): 360 x (7 x 0.004 +
        # 0.01) = 13.68 s; + 0.016 s
        "pgd_retrain": 13.696,
        # per victim: (10 gradients + 34 for the sanity checks: BIM-b 3 x 10, FGSM 3, input gradients 1)
        # x 0.004 s = 0.176 s, + 20 forwards x 0.001 s = 0.02 s: 0.196 s; 8 victims = 1.568 s; + one pass over the
        # 8 test clips to draw the victims, 0.008 s (measured counts already hold PIA's pool)
        "attack@original": 1.576,
        "attack@retrained": 1.576,
    })
    assert plan.total_seconds == pytest.approx(62.212) and plan.calibrated_attacks
    # ladder (upper-bound) counts do not hold PIA's starting pool: one more pass over the test split
    upper = project(calls=AttackCalls(gradients=10, forwards=20, calibrated=False))
    assert upper.seconds["attack@original"] == pytest.approx(1.584) and not upper.calibrated_attacks
    assert project(p=params(attack={"attacks": ["bim_b", "deepfool"], "ladders": LADDERS, "n_victims": 8}),
                   calls=AttackCalls(gradients=10, forwards=20, calibrated=False)).seconds["attack@original"] \
        == pytest.approx(1.576)  # no PIA, no pool
    assert plan.disk_parts == {
        "audio": 9_172_800,     # 104 clips x 2 s x 22050 Hz = 44100 float16 samples = 88200 bytes each
        "features": 104_000,    # 104 clips x 1000 bytes
        "checkpoints": 900,     # model.pt, retrained.pt, retrained_pgd.pt: weights + Adam's two moments, 3 x 3 x 100
        # 3 attacks x 8 victims x 64 float32 = 6144 bytes of results per mode, + their resume states while the
        # stage runs; the 2 attack stages planned here: 2 x 2 x 6144
        "attacks": 24_576,
    }
    assert plan.disk_bytes == 18_604_552  # the workspace and DVC's cache copy: 2 x 9_302_276
    assert project(cache_links=True).disk_bytes == 9_302_276
    # the attack stage holds the 8 victims and two read batches of test clips (the batch being read and the one
    # prefetched), each PIA's pool batch: 4 rounded up to its forward chunk of 32, so (8 + 2 x 32) x 256 bytes =
    # 18432; and results twice (6144 x 2 = 12288). On the CPU, + 4 x 10 bytes of activations and 1000 of base RSS
    assert (plan.peak_ram_bytes, plan.peak_device_bytes) == (31_760, 0)
    # on CUDA the activations move to the device, beside the same test reads and results and the planner's
    # allowance of 4 copies of the 100 weight bytes: 400 + 40 + 18432 + 12288; RAM keeps 1000 + 18432 + 12288
    cuda = project(device_is_cuda=True)
    assert (cuda.peak_ram_bytes, cuda.peak_device_bytes) == (31_720, 31_160)


def _stages_except(plan, *names):
    return {k: v for k, v in plan.seconds.items() if k not in names}


def test_projection_grows_with_the_clips():
    plans = [project(params(synth={"n_classes": 4, "clips_per_class": n, "n_folds": 5})) for n in (5, 10, 20, 40)]
    for small, large in zip(plans, plans[1:]):
        assert large.total_seconds > small.total_seconds and large.disk_bytes > small.disk_bytes
        assert all(large.seconds[k] >= small.seconds[k] for k in small.seconds)
        assert large.peak_ram_bytes >= small.peak_ram_bytes


def test_doubling_the_clips_doubles_the_per_clip_stages_exactly():
    """10 -> 20 clips per class: every split doubles exactly (5 folds: 8 -> 16 test clips). The attack stages
    attack the same 8 victims; only their pass over the test split reads 8 more clips (8 x 0.001 s)."""
    one = project(params(synth={"n_classes": 4, "clips_per_class": 10, "n_folds": 5}))
    two = project(params(synth={"n_classes": 4, "clips_per_class": 20, "n_folds": 5}))
    for stage in ("synth", "augment", "spectrogram", "train", "fgsm_retrain", "clean_finetune"):
        assert two.seconds[stage] == pytest.approx(2 * one.seconds[stage]), stage
    for part in ("audio", "features"):
        assert two.disk_parts[part] == 2 * one.disk_parts[part], part
    for mode in ("original", "retrained"):
        assert two.seconds[f"attack@{mode}"] - one.seconds[f"attack@{mode}"] == pytest.approx(0.008)


def test_training_time_follows_the_epochs():
    plans = [project(train_epochs=e) for e in range(1, 7)]
    for small, large in zip(plans, plans[1:]):
        assert large.seconds["train"] > small.seconds["train"]
        assert _stages_except(large, "train") == _stages_except(small, "train")  # nothing else depends on it
    free_forwards = ModelCosts(**{**NET.__dict__, "forward_seconds": 0.0})  # no validation or test passes
    assert project(net=free_forwards, train_epochs=6).seconds["train"] == pytest.approx(
        2 * project(net=free_forwards, train_epochs=3).seconds["train"])
    # without a previous run, the model's configured maximum: 15 epochs (train.epochs), alexnet's 40 (by_model)
    assert project(train_epochs=None).seconds["train"] == pytest.approx(project(train_epochs=15).seconds["train"])
    alexnet = params(train={"by_model": {"alexnet": {"epochs": 40}}})
    assert project(alexnet, model="alexnet", train_epochs=None).seconds["train"] == pytest.approx(
        project(alexnet, model="alexnet", train_epochs=40).seconds["train"])


def test_cross_validation_trains_one_model_per_pool_fold():
    free_forwards = ModelCosts(**{**NET.__dict__, "forward_seconds": 0.0})
    one = project(net=free_forwards)
    four = project(params(train={"cross_validate": True}), net=free_forwards)
    assert four.seconds["train"] == pytest.approx(4 * one.seconds["train"])  # 4 pool folds
    assert _stages_except(four, "train") == _stages_except(one, "train")


def test_doubling_the_workers_halves_the_parallel_stages_only():
    one, two = project(workers=1), project(workers=2)
    for stage in ("augment", "spectrogram"):
        assert one.seconds[stage] == pytest.approx(2 * two.seconds[stage])
    assert _stages_except(one, "augment", "spectrogram") == _stages_except(two, "augment", "spectrogram")


def test_doubling_the_victims_doubles_the_attack_stages():
    free_forwards = ModelCosts(**{**NET.__dict__, "forward_seconds": 0.0})  # no victim-drawing pass
    eight = project(params(attack={"attacks": list(LADDERS), "ladders": LADDERS, "n_victims": 8}), net=free_forwards)
    sixteen = project(params(attack={"attacks": list(LADDERS), "ladders": LADDERS, "n_victims": 16}),
                      net=free_forwards)
    for mode in ("original", "retrained"):
        assert sixteen.seconds[f"attack@{mode}"] == pytest.approx(2 * eight.seconds[f"attack@{mode}"])
    assert sixteen.disk_parts["attacks"] == 2 * eight.disk_parts["attacks"]
    assert _stages_except(sixteen, "attack@original", "attack@retrained") == \
        _stages_except(eight, "attack@original", "attack@retrained")


def test_grid_disk_counts_shared_outputs_once_in_the_cache():
    def cell(audio, features, links=False):
        return CellPlan(disk_parts={"audio": audio, "features": features, "checkpoints": 10, "attacks": 100},
                        cache_links=links)

    cells = {("esc50", "stft", "alexnet"): cell(1000, 200), ("esc50", "stft", "vgg16"): cell(1000, 200),
             ("esc50", "dwt", "alexnet"): cell(1000, 300)}
    cache = 1000 + 200 + 300 + 3 * 110  # audio once, features per representation, the rest per cell
    assert grid_disk_bytes(cells) == cache + (1000 + 300 + 110)  # + the largest cell's workspace copy
    linked = {k: cell(v.disk_parts["audio"], v.disk_parts["features"], links=True) for k, v in cells.items()}
    assert grid_disk_bytes(linked) == cache
    assert linked[("esc50", "dwt", "alexnet")].disk_bytes == 1410
    assert grid_disk_bytes({}) == 0


def test_cache_links_reads_dvc_config(tmp_path):
    import subprocess
    import sys

    dvc = [sys.executable, "-m", "dvc"]
    assert not cache_links(tmp_path)  # not a DVC repository
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    assert not cache_links(tmp_path)  # DVC's default, reflink then copy: a copy on ext4
    subprocess.run([*dvc, "config", "cache.type", "hardlink,symlink"], cwd=tmp_path, check=True)
    assert cache_links(tmp_path)
    subprocess.run([*dvc, "config", "cache.type", "copy,hardlink"], cwd=tmp_path, check=True)
    assert not cache_links(tmp_path)


def test_the_command_plans_a_tiny_profile_on_the_cpu(tmp_path):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw.update(device="cpu", synth={**raw["synth"], "n_classes": 3, "clips_per_class": 4, "clip_seconds": 0.5})
    raw["spectrogram"].update(height=16, width=16, dwt_scales=16)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "profiles").mkdir()
    for f in (REPO / "profiles").glob("*.yaml"):
        (tmp_path / "profiles" / f.name).write_text(f.read_text())
    make_dvc_project(tmp_path)  # the planner takes the attack stages from dvc.yaml beside params.yaml
    out = tmp_path / "plan.json"
    code = main(["--params", str(tmp_path / "params.yaml"), "--metrics-dir", str(tmp_path / "none"),
                 "--models", "alexnet", "--json", str(out)])
    plan = json.loads(out.read_text())
    assert code == 0 and len(plan["cells"]) == 1 and plan["total_seconds"] > 0
    cell = plan["cells"][0]
    assert {"train", "attack@original", "attack@retrained"} <= set(cell["seconds"]) and not cell["calibrated_attacks"]
    assert cell["disk_bytes"] > 0 and cell["peak_ram_bytes"] > 0 and all(cell["fits"].values())
