"""End-to-end: the spectrogram stage on a tiny fake build/audio written by the test."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from advaudio.config import SpectrogramConfig
from advaudio.data.clip_shards import ClipWriter, storage_info
from advaudio.errors import ConfigError, DataError
from advaudio.features.extract import build_features
from advaudio.features.inputs import INDEX_COLUMNS
from advaudio.features.store import open_features

SR = 22050
CLASSES = ["tone", "noise"]


def write_audio_folder(folder: Path, *, clips: list[np.ndarray], rows: list[list], info: dict,
                       rows_per_shard: int = 4) -> None:
    """The ``clips/`` shards, index.csv and info.json (``info`` plus its ``storage`` entry) of ``clips``, as the
    augment stage writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = ClipWriter(folder, clip_samples=len(clips[0]), rows_per_shard=rows_per_shard)
    for y in clips:
        writer.append(y)
    n_rows = writer.close()
    with open(folder / "index.csv", "w", newline="") as fh:
        csv_writer = csv.writer(fh, lineterminator="\n")
        csv_writer.writerow(INDEX_COLUMNS)
        csv_writer.writerows(rows)
    info = {**info, "storage": storage_info(n_rows=n_rows, rows_per_shard=rows_per_shard)}
    (folder / "info.json").write_text(json.dumps(info))


def write_fake_audio(folder: Path, *, rng: np.random.Generator, n_train: int = 6, n_test: int = 4,
                     seconds: float = 0.5, test_gain: float = 1.0) -> None:
    """The augment stage's outputs (:func:`write_audio_folder`) of tones and noise."""
    n = int(SR * seconds)
    t = np.arange(n) / SR
    clips, rows = [], []
    for i in range(n_train + n_test):
        split = "train" if i < n_train else "test"
        label = i % 2
        y = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) if label == 0 else 0.1 * rng.standard_normal(n)
        clips.append(y * (test_gain if split == "test" else 1.0))
        rows.append([i, f"c{i}", f"s{i}", 1 if split == "test" else 2, label, CLASSES[label], 1.0, split])
    info = {"dataset": "synth", "sample_rate": SR, "clip_samples": n, "class_names": CLASSES,
            "protocol": "official", "test_fold": 1, "n_folds": 2, "dwt_sample_rate": 8000}
    write_audio_folder(folder, clips=clips, rows=rows, info=info)


CONFIG = SpectrogramConfig(height=16, width=12, tonnetz_height=6, dwt_scales=24, dwt_fmin=60.0, workers=1)


@pytest.mark.parametrize("representation", ["stft", "dwt_tonnetz"])
def test_stage_outputs_follow_the_contract(tmp_path, rng, representation):
    write_fake_audio(tmp_path / "audio", rng=rng)
    result = build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / "features",
                            representation=representation, config=CONFIG, dataset="synth")
    out = tmp_path / "features"
    meta = json.loads((out / "meta.json").read_text())
    rows = CONFIG.height + (CONFIG.tonnetz_height if representation.endswith("tonnetz") else 0)
    assert meta["input_shape"] == [1, rows, CONFIG.width]
    assert meta["representation"] == representation and meta["n_classes"] == 2
    assert meta["class_names"] == CLASSES and meta["dataset"] == "synth"
    assert meta["scaling"]["hi"] > meta["scaling"]["lo"]
    assert ("tonnetz_lo" in meta["scaling"]) == representation.endswith("tonnetz")
    n_frames = {"stft": 1 + int(SR * 0.5) // 512, "dwt_tonnetz": 4000 // 256 - 1}[representation]
    native = {"spectrogram": [1025 if representation == "stft" else CONFIG.dwt_scales, n_frames]}
    if representation.endswith("tonnetz"):
        native["tonnetz"] = [6, 1 + int(SR * 0.5) // 512]
    storage = meta["storage"]
    assert storage["dtype"] == "float16"
    assert {b["name"]: b["shape"] for b in storage["blocks"]} == native
    readers = open_features(out)
    for split, n in (("train", 6), ("test", 4)):
        for block, shape in native.items():
            stored = np.load(out / split / f"{block}-00000.npy", mmap_mode="r")
            assert stored.dtype == np.float16 and stored.shape == (n, *shape)
            assert np.all(np.isfinite(stored)) and stored.min() >= 0.0 and stored.max() <= 1.0
        x = getattr(readers, split).load()
        assert x.dtype == torch.float32 and x.shape == (n, 1, rows, CONFIG.width)
        assert torch.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
        with open(out / f"{split}.csv", newline="") as fh:
            index = list(csv.DictReader(fh))
        assert [r["split"] for r in index] == [split] * n
        assert list(index[0]) == list(INDEX_COLUMNS)
    assert (result.n_train, result.n_test) == (6, 4)
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


def test_scaling_constants_come_from_train_only(tmp_path, rng):
    write_fake_audio(tmp_path / "a", rng=np.random.default_rng(0), test_gain=1.0)
    write_fake_audio(tmp_path / "b", rng=np.random.default_rng(0), test_gain=30.0)
    scaled = [build_features(audio_dir=tmp_path / k, out_dir=tmp_path / f"f{k}", representation="stft",
                             config=CONFIG).scaling for k in ("a", "b")]
    assert scaled[0] == scaled[1]
    train = [np.load(tmp_path / f"f{k}" / "train" / "spectrogram-00000.npy") for k in ("a", "b")]
    test = [np.load(tmp_path / f"f{k}" / "test" / "spectrogram-00000.npy").astype(np.float32) for k in ("a", "b")]
    np.testing.assert_array_equal(train[0], train[1])
    assert test[1].mean() > test[0].mean()  # louder test clips, same constants -> brighter


def test_dataset_mismatch_names_the_file(tmp_path, rng):
    write_fake_audio(tmp_path / "audio", rng=rng)
    with pytest.raises(DataError, match="info.json"):
        build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / "f", representation="stft",
                       config=CONFIG, dataset="esc50")


def test_missing_and_inconsistent_inputs_name_the_file(tmp_path, rng):
    with pytest.raises(DataError, match="info.json"):
        build_features(audio_dir=tmp_path / "none", out_dir=tmp_path / "f", representation="stft", config=CONFIG)
    write_fake_audio(tmp_path / "audio", rng=rng)
    np.save(tmp_path / "audio" / "clips" / "clips-00001.npy", np.zeros((3, 10), np.float16))
    with pytest.raises(DataError, match="clips-00001.npy"):
        build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / "f", representation="stft", config=CONFIG)


def test_unknown_representation_lists_the_allowed(tmp_path, rng):
    write_fake_audio(tmp_path / "audio", rng=rng)
    with pytest.raises(ConfigError, match="dwt_tonnetz"):
        build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / "f", representation="mfcc", config=CONFIG)


@pytest.mark.slow
def test_stage_script_with_worker_pool(tmp_path, rng):
    """The stage entry point as DVC runs it, with two spawned workers, on params selecting ``dwt``."""
    import subprocess
    import sys

    write_fake_audio(tmp_path / "audio", rng=rng)
    params = {"dataset": "synth", "representation": "dwt",
              "spectrogram": {"height": 16, "width": 12, "dwt_scales": 24, "dwt_fmin": 60.0, "workers": 2}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "stages" / "spectrogram.py"), "--params", str(tmp_path / "params.yaml"),
         "--audio", str(tmp_path / "audio"), "--out", str(tmp_path / "features")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "spectrogram: 10 clips in" in proc.stdout
    x = open_features(tmp_path / "features").train.load()
    assert x.shape == (6, 1, 16, 12) and 0.0 <= x.min() and x.max() <= 1.0


def test_stage_script_reports_bad_params(tmp_path):
    import subprocess
    import sys

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"spectrogram": {"dwt_hop_length": 250}}))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "stages" / "spectrogram.py"), "--params", str(tmp_path / "params.yaml"),
         "--audio", str(tmp_path / "audio"), "--out", str(tmp_path / "features")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2 and "dwt_hop_length" in proc.stderr


def test_rebuilt_features_are_byte_identical(tmp_path, rng):
    # DVC skips train and the attacks after an unchanged spectrogram rerun only if every output file is
    # identical, so meta.json must hold no timings and extraction must be deterministic.
    write_fake_audio(tmp_path / "audio", rng=rng)
    for out in ("a", "b"):
        build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / out, representation="dwt_tonnetz",
                       config=CONFIG, dataset="synth")
    names = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert "train/tonnetz-00000.npy" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
