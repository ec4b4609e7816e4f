"""The train stage's DVCLive curves follow the model: after kill -9 and a rerun they hold the uninterrupted run's
rows (steps 0..E-1, the same values), whatever the moment of the kill."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advaudio.training.fake_features import write_fake_features
from kill_points import start_stage_killed_after
from stage_trees import make_dvc_project, stage_args

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 6
TIMINGS = ("epoch_seconds", "images_per_second")  # wall-clock values: differ between any two runs
ENV = dict(os.environ, ADVAUDIO_NO_TCMALLOC="1", OMP_NUM_THREADS="1")


def _project(root: Path) -> None:
    write_fake_features(root / "build" / "features", sources_per_class=4, size=(16, 16))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(model="resnet56", device="cpu")
    params["train"].update(epochs=EPOCHS, batch_size=16, lr=0.003, patience=EPOCHS, cross_validate=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    make_dvc_project(root)


def _curves(root: Path) -> dict[str, list[dict[str, str]]]:
    folder = root / "metrics" / "train_live" / "plots" / "metrics"
    out = {}
    for path in sorted(folder.glob("*.tsv")):
        with open(path, newline="") as fh:
            out[path.stem] = list(csv.DictReader(fh, delimiter="\t"))
    return out


def _train(root: Path) -> str:
    done = subprocess.run([sys.executable, str(REPO / "stages" / "train.py"), *stage_args("train")], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("qualname, after", [
    ("ResumeFolder.save", 3),  # epoch 3's state saved, its curve row never logged
    ("Live.next_step", 1),    # epoch 1 logged (DVCLive's metrics.json then says step 0)
    ("Live.next_step", 4),    # epoch 4 logged and its state saved
])
def test_kill_9_during_train_then_rerun_gives_the_uninterrupted_curves(tmp_path, qualname, after):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    for root in (whole, broken):
        _project(root)
    _train(whole)
    expected = _curves(whole)
    assert set(expected) >= {"train_loss", "val_accuracy", "lr"}
    for name, rows in expected.items():
        assert [int(r["step"]) for r in rows] == list(range(EPOCHS)), name

    module = "advaudio.resume" if qualname.startswith("ResumeFolder") else "dvclive.live"
    proc = start_stage_killed_after("train.py", stage_args("train"), cwd=broken, env=ENV, module=module, qualname=qualname,
                                    key="1", after=after)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, out
    assert not (broken / "metrics" / "train.json").exists()
    _train(broken)

    got = _curves(broken)
    assert set(got) == set(expected)
    for name, rows in got.items():
        assert [int(r["step"]) for r in rows] == list(range(EPOCHS)), (name, rows)
        if name not in TIMINGS:
            assert rows == expected[name], name
    summary = json.loads((broken / "metrics" / "train_live" / "metrics.json").read_text())
    assert summary["step"] == EPOCHS - 1
    assert json.loads((broken / "metrics" / "train.json").read_text())["epochs"] == EPOCHS


@pytest.mark.slow
def test_an_edit_to_the_training_code_after_kill_9_starts_training_over_and_says_why(tmp_path):
    """Issue 18's bar: kill -9 in train, an edit to training/loop.py, `dvc repro`: training starts from scratch
    and prints why (the resume state is keyed by the stage's DVC deps, src/advaudio/resume.py)."""
    root = tmp_path / "repo"
    _project(root)
    for folder in ("src/advaudio", "stages", "profiles"):  # a checkout of its own, whose code the test edits
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "build" / "params.ok").write_text("ok\n")  # validate_params' output, a dep of train
    venv_bin = str(Path(sys.executable).parent)  # dvc and the `python` of dvc.yaml's commands
    env = dict(ENV, PYTHONPATH=str(root / "src"), PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = start_stage_killed_after("train.py", stage_args("train"), cwd=root, env=env, module="advaudio.resume",
                                    qualname="ResumeFolder.save", key="1", after=3, stages=root / "stages")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, out
    assert (root / "build" / ".resume" / "train" / "state.pt").is_file()
    with open(root / "src" / "advaudio" / "training" / "loop.py", "a") as fh:
        fh.write("# an edit after the crash\n")

    done = subprocess.run([str(Path(venv_bin) / "dvc"), "repro", "--single-item", "train"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert ("build/.resume/train: discarded (saved under other inputs: src/advaudio/training/loop.py changed); "
            "training starts from its first epoch") in out, out
    assert json.loads((root / "metrics" / "train.json").read_text())["epochs"] == EPOCHS
    for name, rows in _curves(root).items():
        assert [int(r["step"]) for r in rows] == list(range(EPOCHS)), name
    assert not (root / "build" / ".resume").exists()
