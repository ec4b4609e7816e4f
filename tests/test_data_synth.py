"""The synthetic dataset: deterministic bytes, ESC-50 layout the real reader accepts, balanced folds."""

import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from advaudio.config import SynthConfig, params_from_dict
from advaudio.data.datasets import US8K_CLASSES, open_dataset
from advaudio.data.synth import CLASSES, plan_clips, synth_clip, write_synth
from advaudio.data.synth_sounds import SOUNDS

SMALL = SynthConfig(
    n_classes=10, clips_per_class=4, clips_per_source=2, clip_seconds=0.5, sample_rate=8000, n_folds=2
)


def digest(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_same_bytes_different_seed_different_audio(tmp_path):
    write_synth(out_dir=tmp_path / "a", config=SMALL, seed=3, progress=False)
    write_synth(out_dir=tmp_path / "b", config=SMALL, seed=3, progress=False)
    write_synth(out_dir=tmp_path / "c", config=SMALL, seed=4, progress=False)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b and len(a) == 40 + 2
    shared = set(a) & set(c)
    assert all(a[k] != c[k] for k in shared if k.startswith("audio/"))


def test_rewrite_replaces_the_folder(tmp_path):
    write_synth(out_dir=tmp_path / "s", config=SMALL, seed=0, progress=False)
    (tmp_path / "s" / "audio" / "stray.wav").write_bytes(b"x")
    write_synth(out_dir=tmp_path / "s", config=SMALL, seed=0, progress=False)
    assert not (tmp_path / "s" / "audio" / "stray.wav").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary folders left


def test_the_synth_reader_reads_it(tmp_path):
    write_synth(out_dir=tmp_path / "s", config=SMALL, seed=0, progress=False)
    params = params_from_dict({"synth": {"clip_seconds": 0.5}, "spectrogram": {"dwt_sample_rate": 12000}})
    ds = open_dataset(name="synth", root=tmp_path / "s", params=params)
    assert ds.class_names == CLASSES == US8K_CLASSES
    assert ds.clip_seconds == 0.5 and ds.dwt_sample_rate == 12000 and ds.n_folds == 2
    y, sr = sf.read(ds.clips[0].path)
    assert sr == 8000 and y.shape == (4000,) and 0 < np.abs(y).max() < 1


def test_folds_balanced_per_class_and_sources_share_a_fold():
    config = SynthConfig(clips_per_class=40, clips_per_source=2, n_folds=5)
    clips = plan_clips(config=config, seed=0)
    per_class_fold = Counter((c.target, c.fold) for c in clips)
    assert set(per_class_fold.values()) == {8}
    fold_of = defaultdict(set)
    for c in clips:
        fold_of[c.src_file].add(c.fold)
    assert all(len(f) == 1 for f in fold_of.values()) and len(fold_of) == 200
    assert len({c.filename for c in clips}) == len(clips) == 400


def test_uneven_sizes_still_cover_every_clip():
    clips = plan_clips(config=SynthConfig(n_classes=3, clips_per_class=7, clips_per_source=3, n_folds=2), seed=1)
    assert Counter(c.target for c in clips) == {0: 7, 1: 7, 2: 7}


@pytest.mark.parametrize("name", list(SOUNDS))
def test_each_class_generator_is_finite_and_unit_rms(name):
    y = SOUNDS[name](src=np.random.default_rng(0), clip=np.random.default_rng(1), n=16000, sr=16000)
    assert y.shape == (16000,) and np.all(np.isfinite(y))
    assert np.sqrt(np.mean(y**2)) == pytest.approx(1.0, rel=1e-6)


def test_cuts_of_one_source_differ():
    config = SynthConfig(clip_seconds=1.0)
    siren = [c for c in plan_clips(config=config, seed=0) if c.category == "siren"][:2]
    assert siren[0].src_file == siren[1].src_file
    a, b = (synth_clip(clip=c, config=config, seed=0) for c in siren)
    assert not np.array_equal(a, b)
    assert np.max(np.abs(a)) < 1 and np.max(np.abs(b)) < 1
