"""Transfer matrices: known answers on tiny linear models, the counting rules, named errors, reading experiment
outputs through DVC, and (slow) a 2-model smoke grid on synth writing transfer.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from advaudio.errors import ConfigError, DataError
from advaudio.evaluation.transfer import (Rate, TransferCounts, group_matrices, predict_classes, read_run,
                                          transfer_counts)
from advaudio.report import grid as grid_cli
from advaudio.report.collect import collect_grid, records_from_exp_show
from advaudio.report.exp_files import DvcStore, ExperimentFiles
from advaudio.report.transfer import (GroupResult, TransferReport, choose_mode, transfer_groups, transfer_json,
                                      transfer_markdown, transfer_report, write_transfer)
from toy_attack_models import threshold_model

PROJECT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
INPUT_SHAPE = [1, 1, 2]
# Five test clips (x0, x1) and their labels; model A predicts argmax(x0, x1, 0.5), model B argmax(x0, x1, 0.7).
TEST_X = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.2], [0.2, 0.1], [0.2, 0.65]], dtype=np.float32)
TEST_Y = np.array([0, 1, 0, 2, 1])
THRESHOLD = {"A": 0.5, "B": 0.7}
# Each source's victims (rows it classifies correctly), targets and stored adversarials; success is the source's.
VICTIMS = {"A": {"rows": [0, 1, 2, 3], "targets": [1, 0, 1, 0]}, "B": {"rows": [0, 1, 3], "targets": [2, 2, 0]}}
ADV = {
    "A": {"tgt": [[0.4, 0.6], [0.8, 0.3], [0.3, 0.55], [0.45, 0.1]],  # A: 1, 0, 1 (hits), 2 (the target 0 missed)
          "untgt": [[0.45, 0.4], [0.1, 0.45], [0.45, 0.2], [0.2, 0.1]]},  # A: 2, 2, 2 (wrong), 2 (= label: failed)
    "B": {"tgt": [[0.45, 0.1], [0.1, 0.6], [0.75, 0.1]],  # B: 2, 2, 0, every target
          "untgt": [[0.9, 0.1], [0.1, 0.9], [0.2, 0.1]]},  # the clean inputs: failures
}


def _meta() -> dict:
    return {"representation": "stft", "class_names": ["a", "b", "c"], "n_classes": 3, "input_shape": INPUT_SHAPE,
            "scaling": {}, "storage": {"dtype": "float16", "clips_per_shard": 8,
                                       "blocks": [{"name": "s", "shape": [1, 2], "resize_to": [1, 2]}],
                                       "splits": {"test": {"n": len(TEST_Y)}}}}


def _write_run(root: Path, model: str, *, meta: dict | None = None, drop: str | None = None) -> dict[str, Path]:
    """One model's files as an experiment holds them: meta.json, victims.npz and the attack stage's results.npz,
    whose success flags are the source model's own verdict on its adversarials."""
    folder = root / model
    (folder / "features").mkdir(parents=True)
    (folder / "features" / "meta.json").write_text(json.dumps(meta or _meta()))
    rows, targets = np.array(VICTIMS[model]["rows"]), np.array(VICTIMS[model]["targets"])
    np.savez(folder / "victims.npz", rows=rows, labels=TEST_Y[rows], targets=targets)
    net = threshold_model(THRESHOLD[model])
    results = {"test_labels": TEST_Y,
               "test_predictions": predict_classes(net, TEST_X.reshape(-1, *INPUT_SHAPE), batch_size=2, device=CPU)}
    for attack, targeted in (("tgt", True), ("untgt", False)):
        adv = np.array(ADV[model][attack], dtype=np.float32).reshape(-1, *INPUT_SHAPE)
        pred = predict_classes(net, adv, batch_size=2, device=CPU)
        results[f"{attack}_adv"] = adv
        results[f"{attack}_success"] = pred == targets if targeted else pred != TEST_Y[rows]
    results.pop(drop, None)
    np.savez(folder / "results.npz", **results)
    return {"features": folder / "features", "victims": folder / "victims.npz", "results": folder / "results.npz"}


def _runs(tmp_path: Path) -> dict:
    return {m: read_run(model=m, experiment=f"exp-{m}", rev=f"{m}" * 40, **_write_run(tmp_path, m)) for m in "AB"}


def _matrices(runs: dict) -> dict:
    return group_matrices(runs, load_model=lambda m: threshold_model(THRESHOLD[m]), device=CPU,
                          targeted=lambda attack: attack == "tgt")


def test_counting_excludes_victims_the_target_gets_wrong_and_uses_the_attacks_success_rule():
    labels, targets = np.array([0, 1, 2, 0]), np.array([1, 2, 0, 2])
    adv_predictions = np.array([1, 0, 0, 2])
    common = {"labels": labels, "targets": targets, "adv_predictions": adv_predictions,
              "source_success": np.array([True, True, True, False]),
              "clean_predictions": np.array([0, 1, 1, 0])}  # the target misclassifies victim 2
    targeted = transfer_counts(targeted=True, **common)
    # victim 0 reaches its target, victim 1 is wrong but not its target, victim 2 is out (n), victim 3 failed
    assert targeted == TransferCounts(n=3, n_source_success=2, fooled=1)
    assert transfer_counts(targeted=False, **common) == TransferCounts(n=3, n_source_success=2, fooled=2)
    with pytest.raises(ValueError, match="one value per victim"):
        transfer_counts(targeted=True, **{**common, "labels": labels[:3]})


def test_rates_carry_wilson_intervals_and_no_rate_without_victims():
    rate = TransferCounts(n=3, n_source_success=2, fooled=1).transfer_rate()
    assert (rate.successes, rate.n, rate.rate) == (1, 2, 0.5) and rate.ci_low < 0.5 < rate.ci_high
    assert Rate.of(successes=0, n=0).to_json() == {"n": 0, "successes": 0, "rate": None, "ci_low": 0.0,
                                                    "ci_high": 1.0}


def test_group_matrices_known_answers(tmp_path):
    m = _matrices(_runs(tmp_path))
    # A's targeted adversarials on B: B gets victims 0, 1, 3 right (n = 3); A succeeded on 0 and 1; only
    # victim 1's lands on its target in B (victim 0's gives B class 2, not the target 1).
    assert m["tgt"]["A"]["B"] == TransferCounts(n=3, n_source_success=2, fooled=1)
    assert m["tgt"]["A"]["A"] == TransferCounts(n=4, n_source_success=3, fooled=3)  # white-box: 3 of 4
    # untargeted: any wrong class counts, so both of A's successes that B is asked about fool it
    assert m["untgt"]["A"]["B"] == TransferCounts(n=3, n_source_success=2, fooled=2)
    assert m["tgt"]["B"]["A"] == TransferCounts(n=3, n_source_success=3, fooled=2)
    assert m["tgt"]["B"]["B"] == TransferCounts(n=3, n_source_success=3, fooled=3)
    assert m["untgt"]["B"]["A"] == TransferCounts(n=3, n_source_success=0, fooled=0)
    assert m["untgt"]["B"]["A"].transfer_rate().rate is None


def test_json_and_markdown_show_n_per_entry_and_the_white_box_diagonal(tmp_path):
    runs = _runs(tmp_path)
    group = GroupResult(key=("synth", "stft", 0), runs=runs, matrices=_matrices(runs),
                        targeted={"tgt": True, "untgt": False})
    report = TransferReport(mode="original_bounded", groups=[group], single=[(("synth", "dwt", 0), "A")])
    data = transfer_json(report)
    json.dumps(data, allow_nan=False)
    tgt = data["groups"][0]["attacks"]["tgt"]
    assert tgt["targeted"] is True
    assert tgt["matrix"]["A"]["B"] == {"measure": "transfer", "n": 2, "successes": 1, "rate": 0.5,
                                       "ci_low": tgt["matrix"]["A"]["B"]["ci_low"],
                                       "ci_high": tgt["matrix"]["A"]["B"]["ci_high"], "target_correct": 3,
                                       "source_succeeded": 2, "fooled": 1}
    assert tgt["matrix"]["A"]["A"]["measure"] == "white_box" and tgt["matrix"]["A"]["A"]["rate"] == 0.75
    assert data["groups"][0]["experiments"]["A"] == {"experiment": "exp-A", "rev": "A" * 40, "n_victims": 4}
    assert data["single_model"] == [{"dataset": "synth", "representation": "dwt", "seed": 0, "model": "A"}]
    text = transfer_markdown(report)
    assert "### tgt (targeted)" in text and "### untgt (untargeted)" in text
    assert "_75.0 [" in text and "] (4)_" in text and "50.0 [" in text and "– (0)" in text
    write_transfer(report, out_dir=tmp_path / "out")
    assert json.loads((tmp_path / "out" / "transfer.json").read_text()) == data
    assert (tmp_path / "out" / "transfer-synth-stft-s0.png").stat().st_size > 0


def test_missing_or_misshapen_outputs_are_named(tmp_path):
    files = _write_run(tmp_path, "A", drop="untgt_adv")
    run = read_run(model="A", experiment="exp-A", rev="a" * 40, **files)
    with pytest.raises(DataError, match=r"results\.npz: missing arrays \['untgt_adv'\]"):
        run.adversarials("untgt")
    np.savez(files["results"], **{**dict(np.load(files["results"])), "tgt_adv": np.zeros((2, 1, 1, 2), np.float32)})
    with pytest.raises(DataError, match=r"results\.npz: tgt_adv \(2, 1, 1, 2\).*expected \(4, 1, 1, 2\)"):
        run.adversarials("tgt")
    files["victims"].unlink()
    with pytest.raises(DataError, match="victims.npz' not found"):
        read_run(model="A", experiment="exp-A", rev="a" * 40, **files)


def test_a_group_on_different_features_is_refused(tmp_path):
    other = {**_meta(), "scaling": {"lo": 1.0}}
    runs = {"A": read_run(model="A", experiment="exp-A", rev="a" * 40, **_write_run(tmp_path, "A")),
            "B": read_run(model="B", experiment="exp-B", rev="b" * 40, **_write_run(tmp_path, "B", meta=other))}
    with pytest.raises(DataError, match="'exp-A' and 'exp-B' were attacked on different features"):
        _matrices(runs)


def test_groups_are_the_collected_experiments_per_dataset_representation_and_seed():
    records = records_from_exp_show(json.loads((PROJECT / "tests" / "golden" / "exp_show.json").read_text()))
    grid = collect_grid(records=records, datasets=["esc50"], representations=["stft", "dwt"],
                        models=["resnet56", "vgg16"])
    groups = transfer_groups(grid)
    assert {k: list(v) for k, v in groups.items()} == {("esc50", "stft", 0): ["resnet56", "vgg16"],
                                                       ("esc50", "dwt", 0): ["resnet56"]}  # dwt/vgg16 failed
    assert all(len(r.rev) == 40 for v in groups.values() for r in v.values())


def test_transfer_mode_is_a_mode_of_dvc_yaml():
    assert choose_mode(None, repo=PROJECT) == "original_bounded"
    assert choose_mode("retrained", repo=PROJECT) == "retrained"
    assert choose_mode("none", repo=PROJECT) is None
    with pytest.raises(ConfigError, match="unknown transfer mode 'bounded'; choose from"):
        choose_mode("bounded", repo=PROJECT)


def _git_dvc_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q"], cwd=repo, env=env, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, env=env, check=True)
    (repo / "model.pt").write_bytes(b"weights")
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "model.pt"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "model"], cwd=repo, env=env, check=True)
    return repo, env


def test_experiment_outputs_come_from_the_cache_or_the_remote_and_missing_ones_are_named(tmp_path):
    repo, env = _git_dvc_repo(tmp_path)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                         check=True).stdout.strip()
    remote = tmp_path / "storage"
    subprocess.run([sys.executable, "-m", "dvc", "remote", "add", "--local", "store", str(remote)], cwd=repo,
                   env=env, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "push", "-q", "-r", "store"], cwd=repo, env=env, check=True)
    (repo / ".dvc" / "config.local").unlink()  # the repository no longer knows the remote
    files = ExperimentFiles(store=DvcStore(repo=repo), rev=rev, name="exp-1")
    assert files.copy("model.pt", into=tmp_path / "a").read_bytes() == b"weights"  # from the cache
    with pytest.raises(DataError, match=r"build/victims\.npz of experiment 'exp-1' \(commit [0-9a-f]{12}\) cannot be "
                                        r"read"):
        files.copy("build/victims.npz", into=tmp_path / "a")
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "model.pt").unlink()
    with pytest.raises(DataError, match="model.pt of experiment 'exp-1'.*DVC cache or remote"):
        ExperimentFiles(store=DvcStore(repo=repo), rev=rev, name="exp-1").copy("model.pt", into=tmp_path / "b")
    assert not (tmp_path / "b" / "model.pt").exists()
    streamed = ExperimentFiles(store=DvcStore(repo=repo, dvc_remote=str(remote)), rev=rev, name="exp-1")
    assert streamed.copy("model.pt", into=tmp_path / "c").read_bytes() == b"weights"


@pytest.mark.slow
def test_a_two_model_smoke_grid_on_synth_writes_a_transfer_matrix_with_n_per_entry(tmp_path, capsys):
    clone = tmp_path / "advaudio"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True)
    args = ["--profile", "smoke", "--models", "resnet56", "vgg16", "--representations", "stft", "--jobs", "1",
            "--repo", str(clone)]
    assert grid_cli.main(args) == 0, capsys.readouterr().err
    out = clone / "reports" / "grid"
    data = json.loads((out / "transfer.json").read_text())
    assert data["mode"] == "original_bounded" and data["failed"] == [] and len(data["groups"]) == 1
    group = data["groups"][0]
    assert group["models"] == ["resnet56", "vgg16"]
    attack = yaml.safe_load((clone / "params.yaml").read_text())["attack"]
    assert set(group["attacks"]) == {*attack["attacks"], *attack["reference"]}  # the six and APGD
    for attack in group["attacks"].values():
        for source, row in attack["matrix"].items():
            assert list(row) == ["resnet56", "vgg16"]
            for target, entry in row.items():
                assert isinstance(entry["n"], int) and 0 <= entry["successes"] <= entry["n"]
                assert entry["measure"] == ("white_box" if source == target else "transfer")
                assert entry["target_correct"] <= group["experiments"][source]["n_victims"]
    assert (out / group["heatmap"]).stat().st_size > 0
    assert "| ResNet-56" in (out / "transfer.md").read_text()


def test_a_group_whose_outputs_cannot_be_read_is_listed_as_failed(tmp_path):
    records = records_from_exp_show(json.loads((PROJECT / "tests" / "golden" / "exp_show.json").read_text()))
    grid = collect_grid(records=records, datasets=["esc50"], representations=["stft"], models=["resnet56", "vgg16"])
    # the recorded experiments' commits are not in this repository
    report = transfer_report(grid=grid, store=DvcStore(repo=PROJECT), mode="original_bounded", device=CPU,
                             work_dir=tmp_path)
    assert report.groups == [] and [k for k, _ in report.failed] == [("esc50", "stft", 0)]
    error = report.failed[0][1]
    assert "of experiment 'epoxy-ions' (commit d0ee1c2fe45c) cannot be read: unknown Git revision" in error
    assert "**failed**" in transfer_markdown(report) and transfer_json(report)["failed"][0]["seed"] == 0
    assert list(tmp_path.iterdir()) == []  # the group's temporary folder is gone
