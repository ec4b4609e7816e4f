"""Dataset readers and the augment stage's work on ESC-50 / UrbanSound8K layouts the tests write."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from advaudio.config import params_from_dict
from advaudio.data.datasets import DATASETS, US8K_CLASSES, open_dataset
from advaudio.data.prepare import prepare_audio
from advaudio.features.inputs import read_audio_inputs
from advaudio.errors import ConfigError, DataError

US8K_HEADER = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
ESC50_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


def _tone(rng, sr, seconds, channels):
    t = np.arange(max(1, round(seconds * sr))) / sr
    y = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.01 * rng.standard_normal(t.size)
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


def write_us8k(root: Path, rng, *, n_folds=3, sources_per_fold=2, classes=(0, 3, 8)) -> Path:
    """UrbanSound8K layout: 16/24-bit, 11-48 kHz, mono & stereo, 0.3-4.6 s, two slices per source."""
    rows = []
    fs_id = 1000
    for fold in range(1, n_folds + 1):
        (root / "audio" / f"fold{fold}").mkdir(parents=True)
        for label in classes:
            for _ in range(sources_per_fold):
                fs_id += 1
                for slice_k in range(2):
                    sr = int(rng.choice([11025, 16000, 22050, 44100, 48000]))
                    seconds = float(rng.uniform(0.3, 4.6))
                    channels = int(rng.choice([1, 2]))
                    subtype = str(rng.choice(["PCM_16", "PCM_24"]))
                    name = f"{fs_id}-{label}-0-{slice_k}.wav"
                    data = _tone(rng, sr, seconds, channels)
                    sf.write(root / "audio" / f"fold{fold}" / name, data, sr, subtype=subtype)
                    rows.append([name, fs_id, 0.0, seconds, 1, fold, label, US8K_CLASSES[label]])
    (root / "metadata").mkdir()
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([US8K_HEADER, *rows])
    return root


def write_esc50(root: Path, rng, *, drop_column=None) -> Path:
    rows = []
    (root / "audio").mkdir(parents=True)
    for fold in range(1, 6):
        for target, category in enumerate(["dog", "rain"]):
            src = 100 * fold + target
            name = f"{fold}-{src}-A-{target}.wav"
            sf.write(root / "audio" / name, _tone(rng, 44100, 5.0, 1), 44100, subtype="PCM_16")
            rows.append([name, fold, target, category, False, src, "A"])
    header = [c for c in ESC50_HEADER if c != drop_column]
    keep = [ESC50_HEADER.index(c) for c in header]
    (root / "meta").mkdir()
    with open(root / "meta" / "esc50.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([header, *[[r[i] for i in keep] for r in rows]])
    return root


def make_params(**overrides):
    raw = {"augment": {"scales": [0.75, 1.5], "workers": 1}, "audio": {"sample_rate": 8000}}
    for key, value in overrides.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return params_from_dict(raw)


def read_index(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_registry_lists_the_three_datasets():
    assert DATASETS.names() == ["esc50", "synth", "urbansound8k"]
    with pytest.raises(ConfigError, match="choose from"):
        DATASETS.get("esc10")


def test_urbansound8k_layout_goes_end_to_end(tmp_path, rng):
    root = write_us8k(tmp_path / "UrbanSound8K", rng)
    params = make_params(dataset="urbansound8k", dataset_dir=str(root), split={"test_fold": 2})
    ds = open_dataset(name="urbansound8k", root=root, params=params)
    assert ds.class_names == US8K_CLASSES and ds.clip_seconds == 4.0 and ds.dwt_sample_rate == 8000
    assert ds.n_folds == 10 and ds.folds == [1, 2, 3] and len(ds.clips) == 36

    out = tmp_path / "audio"
    result = prepare_audio(params=params, out_dir=out)
    index = read_index(out / "index.csv")
    info = json.loads((out / "info.json").read_text())
    clips = read_audio_inputs(audio_dir=out).rows(range(len(index)))
    assert clips.dtype == np.float32 and clips.shape == (len(index), 4 * 8000)
    assert np.all(np.isfinite(clips)) and np.all(np.abs(clips).max(axis=1) > 0)
    assert [int(r["row"]) for r in index] == list(range(len(index)))
    assert info["dwt_sample_rate"] == 8000 and info["clip_samples"] == 32000 and info["n_folds"] == 10
    assert info["class_names"] == list(US8K_CLASSES) and info["test_fold"] == 2
    test = [r for r in index if r["split"] == "test"]
    assert {r["fold"] for r in test} == {"2"} and len(test) == 12 == result.n_test
    # Only training clips are pitch-shifted, each at every scale, keeping clip, source and fold.
    originals = {r["clip_id"]: r for r in index if float(r["augmentation"]) == 1.0}
    shifted = [r for r in index if float(r["augmentation"]) != 1.0]
    assert len(shifted) == 2 * 24 and all(r["split"] == "train" for r in shifted)
    for r in shifted:
        o = originals[r["clip_id"]]
        assert (o["source_id"], o["fold"], o["label"], o["split"]) == (r["source_id"], r["fold"], r["label"], "train")
    assert not {r["source_id"] for r in test} & {r["source_id"] for r in index if r["split"] == "train"}
    assert (out / "skipped.csv").read_text().strip() == "path,reason"


def test_esc50_layout_and_clip_length(tmp_path, rng):
    root = write_esc50(tmp_path / "ESC-50", rng)
    params = make_params(dataset="esc50", dataset_dir=str(root), audio={"clip_seconds": 1.0})
    ds = open_dataset(name="esc50", root=root, params=params)
    assert ds.class_names == ("dog", "rain") and ds.clip_seconds == 5.0 and ds.dwt_sample_rate == 16000
    prepare_audio(params=params, out_dir=tmp_path / "audio")
    assert read_audio_inputs(audio_dir=tmp_path / "audio").clip_samples == 8000


def test_missing_metadata_column_names_csv_and_column(tmp_path, rng):
    root = write_esc50(tmp_path / "ESC-50", rng, drop_column="src_file")
    with pytest.raises(DataError, match=r"esc50\.csv.*src_file"):
        open_dataset(name="esc50", root=root, params=make_params())


@pytest.mark.parametrize(
    "dataset, make, hint",
    [
        ("esc50", None, "dataset_dir=data/ESC-50"),
        ("esc50", "us8k", "looks like urbansound8k"),
        ("urbansound8k", "esc50", "dataset_dir=data/UrbanSound8K"),
        ("synth", "esc50", "not the synthetic dataset"),
    ],
)
def test_dataset_dir_that_does_not_match(tmp_path, rng, dataset, make, hint):
    root = tmp_path / "somewhere"
    if make == "us8k":
        write_us8k(root, rng, n_folds=1, sources_per_fold=1, classes=(0,))
    elif make == "esc50":
        write_esc50(root, rng)
    with pytest.raises(ConfigError, match=hint):
        open_dataset(name=dataset, root=root, params=make_params())


def test_missing_and_bad_files_fail_or_are_skipped(tmp_path, rng):
    root = write_us8k(tmp_path / "UrbanSound8K", rng, sources_per_fold=1)
    victims = sorted((root / "audio" / "fold3").glob("*.wav"))[:2]
    victims[0].unlink()
    victims[1].write_bytes(b"not a wav file")
    params = make_params(dataset="urbansound8k", dataset_dir=str(root))
    with pytest.raises(DataError, match=victims[0].name):
        prepare_audio(params=params, out_dir=tmp_path / "a")
    victims[0].write_bytes(b"")
    with pytest.raises(DataError, match="skip_bad_files"):
        prepare_audio(params=params, out_dir=tmp_path / "a")

    skipping = make_params(dataset="urbansound8k", dataset_dir=str(root), audio={"skip_bad_files": True})
    result = prepare_audio(params=skipping, out_dir=tmp_path / "b")
    skipped = read_index(tmp_path / "b" / "skipped.csv")
    assert sorted(Path(r["path"]).name for r in skipped) == sorted(v.name for v in victims)
    assert result.n_original == 18 - 2
    ids = {r["clip_id"] for r in read_index(tmp_path / "b" / "index.csv")}
    assert not ids & {v.stem for v in victims}


def test_test_fold_absent_is_a_config_error(tmp_path, rng):
    root = write_us8k(tmp_path / "UrbanSound8K", rng, n_folds=2, sources_per_fold=1)
    params = make_params(dataset="urbansound8k", dataset_dir=str(root), split={"test_fold": 7})
    with pytest.raises(ConfigError, match="split.test_fold = 7"):
        prepare_audio(params=params, out_dir=tmp_path / "audio")
