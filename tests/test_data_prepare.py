"""The augment stage's work on the synthetic dataset: no leakage under either protocol, augmented copies
included; the stage scripts run end to end (slow)."""

import csv
import json
import mmap
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from advaudio.config import SynthConfig, params_from_dict
from advaudio.data.prepare import prepare_audio
from advaudio.data.synth import write_synth
from advaudio.features.inputs import read_audio_inputs
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


def _synth_params(tmp_path: Path, *, clips_per_class: int = 20) -> object:
    config = {**SMALL, "clips_per_class": clips_per_class}
    write_synth(out_dir=tmp_path / "synth", config=SynthConfig(**config), seed=0, progress=False)
    return params_from_dict({"dataset_dir": str(tmp_path / "synth"), "synth": config, "audio": {"sample_rate": 8000},
                             "augment": {"scales": [0.9, 1.15], "workers": 1}})


def test_two_runs_write_identical_bytes_and_a_rerun_replaces_the_last(tmp_path):
    params = _synth_params(tmp_path)
    for out in ("a", "b", "b"):  # "b" twice: the second run replaces the first's outputs
        result = prepare_audio(params=params, out_dir=tmp_path / out, shard_bytes=7 * 4000 * 2)
    assert result.n_rows == 80 + 2 * (80 - result.n_test)
    shards = -(-result.n_rows // 7)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert len([f for f in files if f.parts[0] == "clips"]) == shards
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    info = json.loads((tmp_path / "a" / "info.json").read_text())
    assert info["storage"] == {"dtype": "float16", "folder": "clips", "rows": result.n_rows, "rows_per_shard": 7,
                               "shards": shards}


def test_peak_memory_does_not_grow_with_the_number_of_clips(tmp_path, monkeypatch):
    """The heap (tracemalloc) and the memory maps prepare_audio opens, at N and 2N clips: the old code mapped
    the decoded originals and the whole (rows, L) float32 output, so both grew with N."""
    maps: list[int] = []
    real_mmap = mmap.mmap

    def recording_mmap(fileno, length, *args, **kwargs):
        maps.append(length)
        return real_mmap(fileno, length, *args, **kwargs)

    monkeypatch.setattr(mmap, "mmap", recording_mmap)
    peaks, rows = {}, {}
    for n in (10, 20):
        params = _synth_params(tmp_path / str(n), clips_per_class=n)
        prepare_audio(params=params, out_dir=tmp_path / "warm", shard_bytes=8 * 4000 * 2)  # imports, caches
        maps.clear()
        tracemalloc.start()
        try:
            result = prepare_audio(params=params, out_dir=tmp_path / str(n) / "audio", shard_bytes=8 * 4000 * 2)
            peaks[n] = tracemalloc.get_traced_memory()[1] + sum(maps)
        finally:
            tracemalloc.stop()
        rows[n] = result.n_rows
    extra = (rows[20] - rows[10]) * 4000 * 4  # the extra rows' bytes as float32
    assert rows[20] > 1.8 * rows[10] and peaks[20] - peaks[10] < 0.1 * extra, (peaks, rows)


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
    inputs = read_audio_inputs(audio_dir=tmp_path / "build" / "audio")
    index = read_index(tmp_path / "build" / "audio" / "index.csv")
    assert inputs.clips.n_rows == len(index) and np.all(np.isfinite(inputs.rows(range(50))))
