"""The augment stage's work on the synthetic dataset: no leakage under either protocol, augmented copies
included; the stage scripts run end to end (slow)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advaudio.config import SynthConfig, params_from_dict
from advaudio.data.prepare import prepare_audio
from advaudio.data.synth import write_synth
from stage_trees import stage_args

SMALL = {"n_classes": 4, "clips_per_class": 20, "clips_per_source": 2, "clip_seconds": 0.5, "sample_rate": 8000}


def read_index(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("protocol", ["official", "paper"])
def test_no_source_in_train_and_test(tmp_path, protocol):
    write_synth(out_dir=tmp_path / "synth", config=SynthConfig(**SMALL), seed=0, progress=False)
    params = params_from_dict(
        {
            "dataset_dir": str(tmp_path / "synth"),
            "synth": SMALL,
            "audio": {"sample_rate": 8000},
            "split": {"protocol": protocol, "test_fold": 2},
            "augment": {"scales": [0.9, 1.15], "workers": 1},
        }
    )
    prepare_audio(params=params, out_dir=tmp_path / "audio")
    index = read_index(tmp_path / "audio" / "index.csv")
    info = json.loads((tmp_path / "audio" / "info.json").read_text())
    train = {r["source_id"] for r in index if r["split"] == "train"}
    test = {r["source_id"] for r in index if r["split"] == "test"}
    assert train and test and not train & test
    assert all(r["split"] == "train" for r in index if float(r["augmentation"]) != 1.0)
    n_test = sum(r["split"] == "test" for r in index)
    assert len(index) == 80 + 2 * (80 - n_test)
    if protocol == "paper":
        assert 0.2 <= n_test / 80 <= 0.4 and info["n_folds"] == 5 and info["test_fold"] == 0
        assert {r["fold"] for r in index if r["split"] == "train"} == {"1", "2", "3", "4", "5"}
    else:
        assert {r["fold"] for r in index if r["split"] == "test"} == {"2"} and info["n_folds"] == 5


@pytest.mark.slow
def test_stages_synth_then_augment(tmp_path):
    """`python stages/synth.py && python stages/augment.py` in a copy of the repo's params."""
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "params.yaml").write_text((repo / "params.yaml").read_text())
    for stage in ("synth", "augment"):
        done = subprocess.run(
            [sys.executable, str(repo / "stages" / f"{stage}.py"), *stage_args(stage)], cwd=tmp_path,
            capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert f"{stage}: " in done.stdout
    clips = np.load(tmp_path / "build" / "audio" / "clips.npy", mmap_mode="r")
    index = read_index(tmp_path / "build" / "audio" / "index.csv")
    assert clips.shape[0] == len(index) and np.all(np.isfinite(clips[:50]))
