"""Slow end-to-end checks (``pytest -m slow``): all six models train one epoch on synth-sized fake data
at the default size, and the train and fgsm_retrain stage scripts write their declared outputs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advaudio.config import Params, params_from_dict
from advaudio.models import MODELS
from advaudio.features.store import open_features
from advaudio.training.fake_features import write_fake_features
from advaudio.training.run import train_victim
from stage_trees import make_dvc_project, stage_args

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth_sized(tmp_path_factory):
    defaults = Params()
    return write_fake_features(
        tmp_path_factory.mktemp("features"), n_classes=defaults.synth.n_classes,
        sources_per_class=defaults.synth.clips_per_class, n_folds=defaults.synth.n_folds,
        scales=defaults.augment.scales, size=(defaults.spectrogram.height, defaults.spectrogram.width),
        noise=0.25,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_trains_one_epoch_at_the_default_size(synth_sized, name):
    features = open_features(synth_sized)
    params = params_from_dict({"model": name, "train": {"epochs": 1}})
    m = train_victim(params=params, features=features, progress=False).metrics
    assert m["epochs"] == 1 and 0.0 <= m["test_accuracy"] <= 1.0
    assert np.isfinite(list(m.values())).all()


@pytest.mark.slow
def test_train_and_fgsm_retrain_stages_write_their_outputs(synth_sized, tmp_path):
    shutil.copytree(synth_sized, tmp_path / "build" / "features")
    raw = {"profile": "default", "model": "resnet56", "train": {"epochs": 2}, "fgsm_retrain": {"epochs": 1}}
    (tmp_path / "params.yaml").write_text(json.dumps(raw))  # JSON is YAML
    make_dvc_project(tmp_path)
    for stage in ("train", "fgsm_retrain"):
        done = subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py"), *stage_args(stage)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"{stage}: " in done.stdout
    train = json.loads((tmp_path / "metrics/train.json").read_text())
    assert {"test_accuracy", "macro_f1", "val_accuracy_mean", "val_accuracy_std", "epochs", "seconds",
            "images_per_second", "n_train", "n_test", "n_parameters"} <= set(train)
    retrain = json.loads((tmp_path / "metrics/fgsm_retrain.json").read_text())
    assert retrain["clean_test_accuracy"] == pytest.approx(train["test_accuracy"])
    for path in ("build/model/model.pt", "build/model/retrained.pt", "metrics/train_live/metrics.json",
                 "metrics/confusion.csv"):
        assert (tmp_path / path).is_file(), path
    assert not (tmp_path / "build" / ".resume").exists()  # the resume state goes once the outputs are written
    lines = (tmp_path / "metrics/confusion.csv").read_text().splitlines()
    assert lines[0] == "actual,predicted" and len(lines) == train["n_test"] + 1
    assert (tmp_path / "dvc.yaml").read_text() == (ROOT / "dvc.yaml").read_text()  # DVCLive left it alone
