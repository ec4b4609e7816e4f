"""A full disk is named, never a SIGBUS or an anonymous write error: "no space left on <path>: need N bytes,
M free", and nothing half-written is left behind (src/advaudio/io.py).

Where this process may mount a small tmpfs (root on Linux) the tests fill a real filesystem; the tests that
fake the free space (``advaudio.io.free_bytes``) run everywhere.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import advaudio.features.extract as extract
import advaudio.io
from advaudio.config import SynthConfig, params_from_dict
from advaudio.data.prepare import prepare_audio
from advaudio.data.synth import write_synth
from advaudio.errors import DiskFullError
from advaudio.evaluation.budget import BudgetResult, SearchState
from advaudio.evaluation.search_state import write_search_state
from advaudio.features.extract import build_features
from advaudio.io import npy_nbytes, write_npy, write_text
from advaudio.models import build_model
from advaudio.models.checkpoint import make_config, save_checkpoint
from advaudio.resume import ResumeFolder
from advaudio.training.state import write_training_state
from stage_trees import stage_args
from test_features_stage import CONFIG, write_fake_audio

REPO = Path(__file__).resolve().parents[1]
SMALL = {"n_classes": 4, "clips_per_class": 20, "clips_per_source": 2, "clip_seconds": 0.5, "sample_rate": 8000}
MESSAGE = re.compile(r"no space left on (?P<path>\S+): (need (?P<need>\d+) bytes, (?P<free>\d+) free|"
                     r"(?P<free_only>\d+) bytes free)")


@pytest.fixture
def small_disk(tmp_path):
    """``make(size)``: a fresh tmpfs of ``size`` bytes mounted under tmp_path (skips where mounting fails)."""
    mounted: list[Path] = []

    def make(size: int) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                                  capture_output=True, text=True)
        except FileNotFoundError:
            pytest.skip("no mount command")
        if done.returncode:
            pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", str(where)], check=False)


def _parsed(message: str, path: Path) -> dict:
    found = MESSAGE.search(message)
    assert found and found["path"] == str(path), message
    return {k: int(v) for k, v in found.groupdict().items() if v and k != "path"}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".decode."))


def _budget_state(n: int) -> SearchState:
    result = BudgetResult(name="cw", adv=np.random.default_rng(0).random((n, 1, 32, 32), dtype=np.float32),
                          l2=np.ones(n), success=np.ones(n, bool), level=1, n_levels=2, gradient_calls=0,
                          forward_calls=0, queries=0, seconds=1.0)
    return SearchState(result=result, finished=False)


def _folder(disk: Path) -> ResumeFolder:
    return ResumeFolder(disk / "stage", inputs={}, then="-")


def _write_checkpoint(disk: Path) -> None:
    model = build_model("alexnet", n_classes=3, input_shape=(1, 16, 16))
    config = make_config(model="alexnet", n_classes=3, class_names=list("abc"), input_shape=[1, 16, 16],
                         representation="stft", scaling={"lo": 0.0, "hi": 1.0}, params={})
    save_checkpoint(disk / "model.pt", model=model, config=config)


WRITERS = {  # writer(disk), the file it writes, the bytes it needs (None: not known before writing)
    "write_npy": (lambda d: write_npy(d / "a.npy", np.ones((256, 1024), np.float32)), "a.npy", 128 + 2**20),
    "write_text": (lambda d: write_text(d / "a.csv", "x" * 2**20), "a.csv", 2**20),
    "checkpoint": (_write_checkpoint, "model.pt", "known"),
    "training resume state": (lambda d: _folder(d).save("state.pt", lambda fh: write_training_state(
        fh, {"w": torch.ones(2**19)})), "stage/state.pt", None),
    "attack resume state": (lambda d: _folder(d).save("cw.npz", lambda fh: write_search_state(
        fh, _budget_state(256))), "stage/cw.npz", None),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_on_a_full_disk_names_the_path_and_the_bytes(small_disk, writer):
    write, name, need = WRITERS[writer]
    disk = small_disk(256 * 1024)
    with pytest.raises(DiskFullError) as info:
        write(disk)
    numbers = _parsed(str(info.value), disk / name)
    assert numbers.get("need") == need or need == "known" and numbers["need"] > 256 * 1024
    free = numbers.get("free", numbers.get("free_only"))
    assert 0 <= free <= 256 * 1024
    assert not (disk / name).exists() and _leftovers(disk) == []


def test_a_faked_full_disk_is_refused_before_a_byte_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(advaudio.io, "free_bytes", lambda path: 1000)
    path = tmp_path / "a.npy"
    with pytest.raises(DiskFullError) as info:
        write_npy(path, np.ones(1000, np.float32))
    assert str(info.value) == f"no space left on {path}: need {npy_nbytes(shape=(1000,), dtype='float32')} bytes, " \
                              f"1000 free"
    assert list(tmp_path.iterdir()) == []


def _synth_params(tmp_path: Path) -> dict:
    write_synth(out_dir=tmp_path / "synth", config=SynthConfig(**SMALL), seed=0, progress=False)
    return {"dataset_dir": str(tmp_path / "synth"), "synth": SMALL, "audio": {"sample_rate": 8000},
            "augment": {"scales": [0.9, 1.15], "workers": 1}}


def test_augment_on_a_full_disk_says_so_instead_of_dying_by_sigbus(tmp_path, small_disk):
    # the float16 shards of 80 clips of 4000 samples and their pitch-shifted copies (1.7 MB) do not fit in 1 MiB
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in _synth_params(tmp_path).items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    disk = small_disk(2**20)
    (root / "build").symlink_to(disk)
    done = subprocess.run([sys.executable, str(REPO / "stages" / "augment.py"), *stage_args("augment")], cwd=root,
                          capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, ADVAUDIO_NO_TCMALLOC="1"))
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])  # not -7 (SIGBUS)
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("augment: no space left on build/audio/clips: need "), line
    numbers = _parsed(line, Path("build/audio/clips"))
    assert numbers["need"] > numbers["free"] and (numbers["need"] - 128) % (4000 * 2) == 0  # one shard
    assert list((disk / "audio").iterdir()) == []  # no output at all, no temporary file, no scratch folder


def test_augment_with_too_little_free_space_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(advaudio.io, "free_bytes", lambda path: 2**20)  # the shards need 1.7 MB
    params = params_from_dict(_synth_params(tmp_path))
    out = tmp_path / "audio"
    with pytest.raises(DiskFullError) as info:
        prepare_audio(params=params, out_dir=out)
    numbers = _parsed(str(info.value), out / "clips")
    assert numbers["free"] == 2**20 < numbers["need"]
    assert list(out.iterdir()) == []


def test_augment_running_out_of_space_between_shards_leaves_nothing(tmp_path, small_disk, monkeypatch):
    # the space check before decoding passes (a disk that filled up since, a quota): a shard's write fails
    params = params_from_dict(_synth_params(tmp_path))
    disk = small_disk(5 * 2**19)
    (disk / "old").mkdir()
    prepare_audio(params=params, out_dir=disk / "old", shard_bytes=16 * 4000 * 2)  # 1.7 MB: 0.9 MB left
    monkeypatch.setattr(advaudio.io, "free_bytes", lambda path: 10**12)
    out = disk / "audio"
    with pytest.raises(DiskFullError) as info:
        prepare_audio(params=params, out_dir=out, shard_bytes=16 * 4000 * 2)
    assert str(info.value).startswith(f"no space left on {out / 'clips'}: need "), str(info.value)
    assert list(out.iterdir()) == []  # no shard, no scratch folder, no index


def _audio(tmp_path: Path) -> Path:
    write_fake_audio(tmp_path / "audio", rng=np.random.default_rng(0), n_train=13, n_test=5)
    return tmp_path / "audio"


def _features(audio: Path, out: Path):
    return build_features(audio_dir=audio, out_dir=out, representation="stft", config=CONFIG, dataset="synth",
                          clips_per_shard=3)


def test_spectrogram_on_a_full_disk_is_refused_before_computing(tmp_path, small_disk):
    audio, disk = _audio(tmp_path), small_disk(128 * 1024)
    with pytest.raises(DiskFullError) as info:
        _features(audio, disk / "features")
    numbers = _parsed(str(info.value), disk / ".staging-features")
    assert numbers["need"] > numbers["free"]
    assert not (disk / "features" / "meta.json").exists() and _leftovers(disk) == []


def test_spectrogram_running_out_of_space_midway_names_the_shard(tmp_path, small_disk, monkeypatch):
    monkeypatch.setattr(extract, "check_space", lambda path, *, need: None)  # as if the disk filled up meanwhile
    audio, disk = _audio(tmp_path), small_disk(128 * 1024)
    with pytest.raises(DiskFullError) as info:
        _features(audio, disk / "features")
    found = MESSAGE.search(str(info.value))
    assert found and re.fullmatch(rf"{re.escape(str(disk))}/\.staging-features/(train|test)/spectrogram-\d{{5}}\.npy",
                                  found["path"]), str(info.value)
    assert _leftovers(disk) == []
    for shard in (disk / ".staging-features").rglob("*.npy"):  # what is staged is whole
        assert np.load(shard).shape[0] in (1, 3)


def test_spectrogram_with_too_little_free_space_is_refused_by_name(tmp_path, monkeypatch):
    audio, out = _audio(tmp_path), tmp_path / "features"
    monkeypatch.setattr(advaudio.io, "free_bytes", lambda path: 50_000)
    with pytest.raises(DiskFullError) as info:
        _features(audio, out)
    numbers = _parsed(str(info.value), tmp_path / ".staging-features")
    assert numbers["free"] == 50_000 < numbers["need"]
    assert not (out / "meta.json").exists() and _leftovers(tmp_path) == []
    assert json.loads((tmp_path / "audio" / "info.json").read_text())["dataset"] == "synth"  # inputs untouched
