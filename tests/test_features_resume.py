"""Crash-safe spectrogram stage: a run resumed from the staged shards equals an uninterrupted one; kill -9."""

import dataclasses
import hashlib
import json
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import advaudio.features.extract as extract
import advaudio.features.scaling as scaling
import advaudio.features.shards as shards
from advaudio.features.extract import build_features
from advaudio.features.staging import spectrogram_inputs
from advaudio.resume import ResumeFolder, changed_inputs
from kill_points import start_stage_killed_after
from stage_trees import make_dvc_project, stage_args
from test_features_stage import CONFIG, write_fake_audio

REPO = Path(__file__).resolve().parents[1]
CPS = 3  # clips per shard: 13 training clips -> 5 shards (the last holds 1), 5 test clips -> 2
N_TRAIN, N_TEST = 13, 5
BLOCKS = {"stft": ("spectrogram",), "dwt_tonnetz": ("spectrogram", "tonnetz")}


class Crash(Exception):
    pass


def staging_dir_for(out: Path) -> Path:
    return out.parent / ".resume" / "spectrogram"


def _build(audio: Path, out: Path, *, representation: str = "stft", config=CONFIG, inputs=None):
    """build_features with its resume folder; ``inputs`` stand for the stage's inputs (default: these settings)."""
    inputs = inputs or {"representation": representation, "config": repr(config)}
    folder = ResumeFolder(staging_dir_for(out), inputs=inputs, then="every shard is computed again")
    return build_features(audio_dir=audio, out_dir=out, representation=representation, config=config,
                          dataset="synth", clips_per_shard=CPS, resume=folder)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _done(folder: Path, *, split: str, blocks: tuple[str, ...], n: int) -> set[int]:
    """Shards of ``split`` with every block's file staged in ``folder``."""
    return {i for i in range(-(-n // CPS)) if all((folder / split / f"{b}-{i:05d}.npy").is_file() for b in blocks)}


@pytest.fixture
def computed(monkeypatch) -> list[tuple[int, str]]:
    """(build/audio row, block) of every block the stage computes, in order."""
    calls: list[tuple[int, str]] = []
    real = extract._compute_task

    def counting(task):
        calls.extend((r, b) for r, blocks in zip(task.rows, task.blocks) for b in blocks)
        return real(task)

    monkeypatch.setattr(extract, "_compute_task", counting)  # workers=1: tasks run in this process
    return calls


def _crash_after_saves(monkeypatch, saves: int) -> None:
    """Make shard file number ``saves`` (0-based) raise, as a kill right after the ones before it would."""
    real, count = shards.write_npy, [0]

    def save(path, array):
        if count[0] == saves:
            raise Crash
        count[0] += 1
        real(path, array)

    monkeypatch.setattr(shards, "write_npy", save)  # every shard write, staged ones included


@pytest.mark.parametrize("representation, max_samples, saves", [
    ("stft", None, 0),         # scaling saved, no shard yet
    ("stft", None, 3),         # 3 of 5 train shards
    ("stft", None, 6),         # every train shard and 1 of 2 test shards
    ("stft", 60000, 2),        # the scaling sample is every 4th clip: kept clips must not be recomputed
    ("dwt_tonnetz", None, 5),  # train shard 2 half written (spectrogram file only): recomputed whole
])
def test_a_run_resumed_after_a_crash_equals_the_uninterrupted_run_and_recomputes_only_unfinished_shards(
        tmp_path, rng, monkeypatch, capsys, computed, representation, max_samples, saves):
    if max_samples:
        monkeypatch.setattr(scaling, "MAX_PERCENTILE_SAMPLES", max_samples)
    audio, out = tmp_path / "audio", tmp_path / "features"
    write_fake_audio(audio, rng=rng, n_train=N_TRAIN, n_test=N_TEST)
    _build(audio, tmp_path / "whole", representation=representation)
    reference = _files(tmp_path / "whole")
    assert "train/spectrogram-00004.npy" in reference and "test/spectrogram-00001.npy" in reference
    assert sorted(computed) == sorted((r, b) for r in range(N_TRAIN + N_TEST) for b in BLOCKS[representation])

    with monkeypatch.context() as m:
        _crash_after_saves(m, saves)
        with pytest.raises(Crash):
            _build(audio, out, representation=representation)
    assert not (out / "meta.json").exists()
    stage = staging_dir_for(out)
    assert (stage / "scaling.json").is_file()
    blocks = BLOCKS[representation]
    done = {"train": _done(stage, split="train", blocks=blocks, n=N_TRAIN),
            "test": _done(stage, split="test", blocks=blocks, n=N_TEST)}
    assert sum(map(len, done.values())) == saves // len(blocks)

    computed.clear()
    capsys.readouterr()
    _build(audio, out, representation=representation)
    printed = capsys.readouterr().out
    assert f"resumes with {len(done['train'])}/5 train shards and {len(done['test'])}/2 test shards done" in printed
    assert _files(out) == reference
    first = {"train": 0, "test": N_TRAIN}  # build/audio row of each split's first clip
    expected = [(first[split] + p, b) for split, n in (("train", N_TRAIN), ("test", N_TEST))
                for p in range(n) if p // CPS not in done[split] for b in blocks]
    assert sorted(computed) == sorted(expected)  # no sample pass, no finished shard again, nothing twice
    assert not stage.exists() and not stage.parent.exists()


def test_a_crash_in_the_scaling_sample_pass_reruns_it(tmp_path, rng, monkeypatch, computed):
    audio, out = tmp_path / "audio", tmp_path / "features"
    write_fake_audio(audio, rng=rng, n_train=N_TRAIN, n_test=N_TEST)
    _build(audio, tmp_path / "whole")
    def crash(**kwargs):
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(extract, "fit_block", crash)  # the sample pass is computed, the constants are not saved
        with pytest.raises(Crash):
            _build(audio, out)
    assert not (staging_dir_for(out) / "scaling.json").exists()
    computed.clear()
    _build(audio, out)
    assert sorted(computed) == [(r, "spectrogram") for r in range(N_TRAIN + N_TEST)]
    assert _files(out) == _files(tmp_path / "whole")


def test_a_staging_folder_of_other_inputs_is_discarded(tmp_path, rng, monkeypatch, capsys, computed):
    audio, out = tmp_path / "audio", tmp_path / "features"
    write_fake_audio(audio, rng=rng, n_train=N_TRAIN, n_test=N_TEST)
    with monkeypatch.context() as m:
        _crash_after_saves(m, 3)
        with pytest.raises(Crash):
            _build(audio, out)
    assert len(list((staging_dir_for(out) / "train").glob("*.npy"))) == 3
    changed = dataclasses.replace(CONFIG, top_db=40.0)
    computed.clear()
    capsys.readouterr()
    _build(audio, out, config=changed)
    printed = capsys.readouterr()
    assert "resumes" not in printed.out
    assert printed.err == (f"{staging_dir_for(out)}: discarded (saved under other inputs: config changed); every "
                           "shard is computed again\n")
    assert sorted(computed) == [(r, "spectrogram") for r in range(N_TRAIN + N_TEST)]
    _build(audio, tmp_path / "whole", config=changed)
    assert _files(out) == _files(tmp_path / "whole")


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _spoil(path: Path, kind: str, marker: Path) -> None:
    if kind == "text":
        path.write_text("not what the stage wrote\n")
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00\x93NUMPY" + bytes(range(256)))
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "hostile pickle":
        path.write_bytes(pickle.dumps(_Payload(marker)))
    elif kind == "hostile object array":
        with open(path, "wb") as fh:
            np.save(fh, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    elif kind == "wrong shape":
        with open(path, "wb") as fh:
            np.save(fh, np.zeros((2, 2), dtype=np.float16))
    elif kind in ("NaN values", "values above 1"):  # the right dtype and shape, values no scaling gives
        array = np.load(path)
        array[-1, 0, :3] = np.nan if kind == "NaN values" else 2.0
        with open(path, "wb") as fh:
            np.save(fh, array)
    elif kind == "wrong keys":
        path.write_text(json.dumps({"lo": 0.0}))
    elif kind == "not finite":
        path.write_text(json.dumps({k: float("nan") for k in json.loads(path.read_text())}))  # NaN: not JSON


@pytest.mark.parametrize("target, kind", [
    ("scaling.json", "text"), ("scaling.json", "binary"), ("scaling.json", "wrong keys"),
    ("scaling.json", "not finite"),
    ("train/spectrogram-00001.npy", "text"), ("train/spectrogram-00001.npy", "binary"),
    ("train/spectrogram-00001.npy", "truncated"), ("train/spectrogram-00001.npy", "hostile pickle"),
    ("train/spectrogram-00001.npy", "hostile object array"), ("train/spectrogram-00001.npy", "wrong shape"),
    ("train/spectrogram-00001.npy", "NaN values"), ("train/spectrogram-00001.npy", "values above 1"),
])
def test_a_bad_staged_file_is_discarded_and_its_work_done_again(tmp_path, rng, monkeypatch, capsys, target, kind):
    audio, out = tmp_path / "audio", tmp_path / "features"
    write_fake_audio(audio, rng=rng, n_train=N_TRAIN, n_test=N_TEST)
    _build(audio, tmp_path / "whole")
    with monkeypatch.context() as m:
        _crash_after_saves(m, 3)
        with pytest.raises(Crash):
            _build(audio, out)
    stage = staging_dir_for(out)
    marker = tmp_path / "pwned"
    _spoil(stage / target, kind, marker)
    capsys.readouterr()
    _build(audio, out)  # not blocked
    printed = capsys.readouterr()
    discarded = stage if target == "scaling.json" else stage / target
    lines = [line for line in printed.err.splitlines() if "discarded" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{discarded}: discarded ("), printed.err
    assert target.split("/")[-1] in lines[0] and "allow_pickle=True" not in lines[0]
    if kind in ("NaN values", "values above 1"):
        assert f"clip {CPS - 1} holds NaN or values outside [0, 1]" in lines[0], lines[0]
    if target == "scaling.json":  # every staged shard was scaled with it: all of them go
        assert "resumes" not in printed.out, printed.out
    else:
        assert "resumes with 2/5 train shards and 0/2 test shards done" in printed.out, printed.out
    assert _files(out) == _files(tmp_path / "whole")
    assert not marker.exists()


def test_the_staged_shards_are_keyed_by_the_stage_inputs_but_the_worker_count(tmp_path, rng):
    """The spectrogram stage's resume inputs: its DVC deps and params (the audio folder, the settings), the
    command-line shard size, not ``spectrogram.workers`` (speed only)."""
    root = tmp_path / "repo"
    write_fake_audio(root / "build" / "audio", rng=rng)
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (root / "profiles").mkdir()
    for p in (REPO / "profiles").glob("*.yaml"):
        (root / "profiles" / p.name).write_text(p.read_text())
    make_dvc_project(root)
    base = spectrogram_inputs(clips_per_shard=CPS, root=root)
    assert {"build/audio", "param:representation", "param:spectrogram", "extra:libraries"} <= set(base)

    def edit_params(**changes):
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        for key, value in changes.items():
            params["spectrogram"][key] = value
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        return changed_inputs(base, spectrogram_inputs(clips_per_shard=CPS, root=root))

    assert edit_params(workers=7) == []
    assert edit_params(n_fft=1024) == ["param:spectrogram"]
    edit_params()
    assert changed_inputs(base, spectrogram_inputs(clips_per_shard=CPS + 1, root=root)) == ["extra:clips_per_shard"]
    with open(sorted((root / "build" / "audio" / "clips").iterdir())[-1], "r+b") as fh:
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 1]))
    assert changed_inputs(base, spectrogram_inputs(clips_per_shard=CPS, root=root)) == ["build/audio"]


def test_a_clean_run_leaves_no_staging_folder_and_hashes_the_shards_in_order(tmp_path, rng):
    audio, out = tmp_path / "audio", tmp_path / "features"
    write_fake_audio(audio, rng=rng, n_train=N_TRAIN, n_test=N_TEST)
    build_features(audio_dir=audio, out_dir=out, representation="dwt_tonnetz", config=CONFIG, dataset="synth",
                   clips_per_shard=CPS)  # no resume folder: staged in a fresh one, deleted at the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "features"]
    meta = json.loads((out / "meta.json").read_text())
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        digest = hashlib.sha256()
        for i in range(-(-n // CPS)):
            for block in BLOCKS["dwt_tonnetz"]:
                digest.update(np.load(out / split / f"{block}-{i:05d}.npy").tobytes())
        assert meta["storage"]["splits"][split] == {"n": n, "sha256": digest.hexdigest(), "shards": -(-n // CPS)}


def _stage(root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "stages" / "spectrogram.py"), *stage_args("spectrogram"),
                             "--clips-per-shard", "2"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_kill_9_in_the_middle_of_the_spectrogram_stage_then_rerun_gives_the_uninterrupted_outputs(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    params = {"profile": "default", "dataset": "synth", "representation": "dwt_tonnetz",
              "spectrogram": {"height": 16, "width": 12, "tonnetz_height": 6, "dwt_scales": 24, "dwt_fmin": 60.0,
                              "workers": 1}}
    for root in (whole, broken):
        write_fake_audio(root / "build" / "audio", rng=np.random.default_rng(5), n_train=24, n_test=8)
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        make_dvc_project(root)
    out, _ = _stage(whole).communicate(timeout=600)
    assert "spectrogram: 32 clips in" in out and "resumes" not in out, out
    assert not (whole / "build" / ".resume").exists()  # deleted once the outputs are written

    staged = broken / "build" / ".resume" / "spectrogram" / "train"
    # a shard is complete once its last block (tonnetz) is there: the stage kills itself right after the 5th
    proc = start_stage_killed_after(
        "spectrogram.py", [*stage_args("spectrogram"), "--clips-per-shard", "2"], cwd=broken, module="advaudio.features.shards",
        qualname="write_npy", after=5,
        key="str(args[0]) if '.resume' in str(args[0]) and '/train/tonnetz-' in str(args[0]) else None")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, out
    assert not (broken / "build" / "features" / "meta.json").exists()  # nothing that looks finished
    n_staged = len(list(staged.glob("tonnetz-*.npy")))
    assert n_staged == 5
    shutil.rmtree(broken / "build" / "features", ignore_errors=True)  # what DVC does before it reruns a stage
    out, _ = _stage(broken).communicate(timeout=600)
    assert f"resumes with {n_staged}/12 train shards and 0/4 test shards done" in out, out
    assert _files(broken / "build" / "features") == _files(whole / "build" / "features")
    assert not (broken / "build" / ".resume").exists()
