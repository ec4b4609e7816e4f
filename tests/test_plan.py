"""The cost planner: known-answer projections from given per-item costs, and the command on a tiny profile."""

import json
from pathlib import Path

import pytest
import yaml

from advaudio.config import params_from_dict
from advaudio.plan.__main__ import cache_links, main
from advaudio.plan.facts import dataset_facts
from advaudio.plan.measure import ClipCosts, ModelCosts
from advaudio.plan.project import (SANITY_GRADIENTS, AttackCalls, CellPlan, grid_disk_bytes, ladder_calls,
                                   measured_calls, project_cell)

REPO = Path(__file__).resolve().parents[1]

LADDERS = {
    "bim_b": [{"epsilon": 1.0, "steps": 10}, {"epsilon": 2.0, "steps": 20}],
    "deepfool": [{"steps": 5}],
    "pia": [{"epsilon": 0.1, "steps": 4, "samples": 10}],
}


def params(**over):
    raw = {"synth": {"n_classes": 4, "clips_per_class": 10, "n_folds": 5}, "augment": {"scales": [0.9, 1.1]},
           "attack": {"attacks": list(LADDERS), "ladders": LADDERS, "n_victims": 8}, **over}
    return params_from_dict(raw)


def test_synth_facts_follow_the_params():
    facts = dataset_facts(params=params(), dataset="synth")
    assert (facts.n_clips, facts.n_test, facts.n_train_rows, facts.pool_folds) == (40, 8, 32 * 3, 4)
    esc = dataset_facts(params=params(split={"protocol": "paper"}), dataset="esc50")
    assert (esc.n_test, esc.n_train_rows, esc.pool_folds) == (600, 1400 * 3, 5)


def test_ladder_upper_bound_counts_every_rung_in_full():
    calls = ladder_calls(params=params(), bounded=False, n_classes=4, n_features=64)
    # bim_b 10 + 20 gradients; deepfool 5 steps x 3 classes (all but the top one); pia 4 x (10 + 3) queries;
    # + one verification per rung
    assert calls.gradients == 30 + 15 and calls.forwards == (1 + 1) + 0 + 4 * 13 + 4
    assert not calls.calibrated


def test_calls_of_a_matching_previous_run_are_used_per_victim():
    metrics = {"n_victims": 8, "bim_b": {"gradient_calls": 80, "forward_calls": 96, "n_levels": 2},
               "deepfool": {"gradient_calls": 40, "forward_calls": 40, "n_levels": 1},
               "pia": {"gradient_calls": 0, "forward_calls": 800, "n_levels": 1}}
    calls = measured_calls(metrics=metrics, params=params())
    assert calls.calibrated and calls.gradients == 15 and calls.forwards == 102
    metrics["pia"]["n_levels"] = 3  # another ladder: not this configuration
    assert measured_calls(metrics=metrics, params=params()) is None


def test_cell_projection_known_answer():
    p = params()
    facts = dataset_facts(params=p, dataset="synth")
    clip = ClipCosts(synth_seconds=0.5, pitch_shift_seconds=0.2, feature_seconds=0.1, stored_bytes=1000)
    net = ModelCosts(train_seconds=0.01, gradient_seconds=0.004, forward_seconds=0.001, backward_bytes=10,
                     weight_bytes=100, batch_size=4)
    calls = {m: AttackCalls(gradients=10, forwards=20, calibrated=True) for m in ("original", "retrained")}
    plan = project_cell(params=p, model="resnet56", facts=facts, clip=clip, net=net, n_features=64, train_epochs=3,
                        attack_calls=calls, base_ram_bytes=0, device_is_cuda=False, workers=2)
    assert plan.seconds["synth"] == pytest.approx(40 * 0.5)
    assert plan.seconds["augment"] == pytest.approx(32 * 2 * 0.2 / 2)
    assert plan.seconds["spectrogram"] == pytest.approx((96 + 8) * 0.1 / 2)
    fit_rows = 96 * (1 - 1 / 4)
    assert plan.seconds["train"] == pytest.approx(3 * (fit_rows * 0.01 + 32 / 4 * 0.001) + 8 * 0.001)
    victim = (10 + SANITY_GRADIENTS) * 0.004 + 20 * 0.001
    assert plan.seconds["attack@original"] == pytest.approx(8 * victim + 8 * 0.001)  # measured calls hold PIA's pool
    upper = {m: AttackCalls(gradients=10, forwards=20, calibrated=False) for m in calls}
    bound = project_cell(params=p, model="resnet56", facts=facts, clip=clip, net=net, n_features=64, train_epochs=3,
                         attack_calls=upper, base_ram_bytes=0, device_is_cuda=False, workers=2)
    assert bound.seconds["attack@original"] == pytest.approx(8 * victim + 2 * 8 * 0.001)  # + PIA's pass over the pool
    assert plan.calibrated_attacks and plan.total_seconds == pytest.approx(sum(plan.seconds.values()))
    # 8 test clips + 96 training rows of 2 s at 22.05 kHz (synth's defaults); 6 x 8 results of 64 float32 per mode
    audio, features = 104 * 44100 * 4, 104 * 1000
    attacks = 4 * (3 * 8 * 64 * 4) * 2
    assert plan.disk_parts == {"audio": audio, "features": features, "checkpoints": 600, "attacks": attacks}
    assert plan.disk_bytes == 2 * (audio + features + 600 + attacks)  # workspace + DVC's cache copy


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
    out = tmp_path / "plan.json"
    code = main(["--params", str(tmp_path / "params.yaml"), "--metrics-dir", str(tmp_path / "none"),
                 "--models", "alexnet", "--json", str(out)])
    plan = json.loads(out.read_text())
    assert code == 0 and len(plan["cells"]) == 1 and plan["total_seconds"] > 0
    cell = plan["cells"][0]
    assert {"train", "attack@original", "attack@retrained"} <= set(cell["seconds"]) and not cell["calibrated_attacks"]
    assert cell["disk_bytes"] > 0 and cell["peak_ram_bytes"] > 0 and all(cell["fits"].values())
