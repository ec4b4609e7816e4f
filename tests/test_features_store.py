"""The stored features format and its readers: native float16 shards, resize at read time, streaming."""

import dataclasses

import numpy as np
import pytest
import torch

from advaudio.config import PROFILES_DIR, SpectrogramConfig, load_profile, params_from_dict
from advaudio.errors import ConfigError, DataError
from advaudio.features import extract
from advaudio.features.extract import build_features
from advaudio.features.inputs import read_audio_inputs
from advaudio.features.reader import CACHE_ENV, TensorSplit
from advaudio.features.representations import REPRESENTATIONS, stored_bytes_per_clip, target_shapes
from advaudio.features.resize import resize_batch
from advaudio.features.store import open_features, open_split, read_meta
from advaudio.models import build_model
from advaudio.training.fake_features import write_fake_features
from advaudio.training.loop import fit
from test_features_stage import write_audio_folder

SR = 22050
CONFIG = SpectrogramConfig(height=16, width=12, tonnetz_height=6, dwt_scales=24, dwt_fmin=60.0, workers=1)


def write_tones(folder, *, freqs, seconds=0.5, rng=None):
    """The augment stage's outputs of pure tones, alternating train and test (label = index % 2)."""
    t = np.arange(int(SR * seconds)) / SR
    clips = [0.3 * np.sin(2 * np.pi * f * t) for f in freqs]
    if rng is not None:
        clips = [c + 0.01 * rng.standard_normal(len(t)) for c in clips]
    rows = []
    for i in range(len(freqs)):
        split = "train" if i % 2 == 0 else "test"
        rows.append([i, f"c{i}", f"s{i}", 2 if split == "train" else 1, i % 2, f"k{i % 2}", 1.0, split])
    info = {"dataset": "synth", "sample_rate": SR, "clip_samples": len(t), "class_names": ["k0", "k1"],
            "protocol": "official", "test_fold": 1, "n_folds": 2, "dwt_sample_rate": 8000}
    write_audio_folder(folder, clips=clips, rows=rows, info=info)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """Fake features stored at 40 x 24, read at 16 x 16, 7 clips per shard (several shards, a partial last)."""
    return write_fake_features(tmp_path_factory.mktemp("f"), sources_per_class=6, native_size=(40, 24),
                               clips_per_shard=7)


def test_reads_agree_whatever_the_path(sharded, monkeypatch):
    reader = open_features(sharded).train
    assert reader.input_shape == (1, 16, 16) and len(reader) > 21
    full = reader.load()
    assert full.dtype == torch.float32 and full.shape == (len(reader), 1, 16, 16)
    rows = np.array([20, 3, 3, 0, len(reader) - 1, 8])  # several shards, repeats, any order
    torch.testing.assert_close(reader.read(rows), full[rows], rtol=0, atol=0)
    sub = reader.subset(np.arange(5, len(reader), 2))
    torch.testing.assert_close(sub.read(np.array([2, 0])), full[[9, 5]], rtol=0, atol=0)
    assert torch.equal(sub.y, reader.y[5::2]) and (sub.fold == reader.fold[5::2]).all()
    for prefetch in (False, True):
        got = list(reader.batches(rows, batch_size=4, prefetch=prefetch))
        assert [len(y) for _, y in got] == [4, 2]
        torch.testing.assert_close(torch.cat([x for x, _ in got]), full[rows], rtol=0, atol=0)
        torch.testing.assert_close(torch.cat([y for _, y in got]), reader.y[rows], rtol=0, atol=0)
    cached = reader.cached()
    assert isinstance(cached, TensorSplit)
    torch.testing.assert_close(cached.read(rows), full[rows], rtol=0, atol=0)
    assert reader.cached(max_bytes=100) is reader  # too big for the cache: streamed
    monkeypatch.setenv(CACHE_ENV, "0")
    assert reader.cached() is reader  # 0 MiB: always streamed
    monkeypatch.setenv(CACHE_ENV, "0.5")
    assert isinstance(reader.cached(), TensorSplit)  # 512 kiB holds these few 16 x 16 inputs
    for bad in ("-1", "lots", "nan"):
        monkeypatch.setenv(CACHE_ENV, bad)
        with pytest.raises(ConfigError, match=CACHE_ENV):
            reader.cached()
    test = open_split(sharded, "test", meta=read_meta(sharded))  # what the attack stages read
    assert test.input_shape == (1, 16, 16) and len(test) == len(test.y) == len(test.fold) > 0


def test_streamed_and_cached_training_give_identical_weights(sharded):
    torch.set_num_threads(1)
    reader = open_features(sharded).train
    rows = np.flatnonzero(reader.fold != 2)
    params = params_from_dict({"device": "cpu", "train": {"epochs": 2, "batch_size": 16, "amp": False}})

    def train(data):
        torch.manual_seed(0)
        model = build_model("resnet56", n_classes=4, input_shape=reader.input_shape)
        fit(model, train=data, val=reader.subset(np.flatnonzero(reader.fold == 2)), config=params.train, seed=3,
            device="cpu", progress=False)
        return torch.cat([t.flatten().float() for t in model.state_dict().values()])

    streamed = train(reader.subset(rows))
    assert torch.equal(streamed, train(reader.subset(rows)))  # same seed: byte-identical
    assert torch.equal(streamed, train(reader.subset(rows).cached()))


@pytest.mark.parametrize("representation", ["stft", "dwt_tonnetz"])
def test_float16_storage_error_is_below_1e_3_after_resize(tmp_path, rng, representation):
    write_tones(tmp_path / "audio", freqs=[300, 700, 1500, 2500, 4000, 6000], rng=rng)
    result = build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / "f", representation=representation,
                            config=CONFIG)
    got = open_features(tmp_path / "f").test.load()
    rep, clips = REPRESENTATIONS.get(representation), read_audio_inputs(audio_dir=tmp_path / "audio").rows(range(6))
    parts = []
    for block, (h, w) in target_shapes(name=representation, config=CONFIG).items():
        prefix = "" if block == "spectrogram" else "tonnetz_"
        lo, hi = result.scaling[prefix + "lo"], result.scaling[prefix + "hi"]
        native = np.stack([rep.compute(block, y=clips[i], sample_rate=SR, dwt_sample_rate=8000, config=CONFIG)
                           for i in (1, 3, 5)])
        scaled = np.clip((native - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)  # the float32 path
        parts.append(resize_batch(torch.from_numpy(scaled), height=h, width=w))
    reference = torch.cat(parts, dim=2).clamp(0, 1)
    assert got.shape == reference.shape
    error = (got - reference).abs().max().item()
    assert error <= 1e-3, error


def test_a_tone_lands_in_its_rows(tmp_path):
    freqs = [500.0, 500.0, 2000.0, 2000.0, 6000.0, 6000.0]
    write_tones(tmp_path / "audio", freqs=freqs)
    config = dataclasses.replace(CONFIG, height=64)
    build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / "f", representation="stft", config=config)
    x = open_features(tmp_path / "f").test.load()  # clips 1, 3, 5
    for image, freq in zip(x, freqs[1::2]):
        native_bin = freq * config.n_fft / SR
        expected = (native_bin + 0.5) * config.height / (1 + config.n_fft // 2) - 0.5  # bin centre -> row
        assert abs(int(image[0].mean(dim=1).argmax()) - expected) <= 1.0, (freq, expected)


def test_stored_bytes_per_clip_stay_under_1_mb_at_the_study_sizes():
    study = params_from_dict({"spectrogram": load_profile("study", profiles_dir=PROFILES_DIR)["spectrogram"]})
    datasets = {"esc50": (5.0, 16000), "urbansound8k": (4.0, 8000)}  # seconds, DWT rate (data/datasets.py)
    for name in REPRESENTATIONS.names():
        for seconds, dwt_rate in datasets.values():
            n = stored_bytes_per_clip(name=name, config=study.spectrogram, n_samples=int(seconds * SR),
                                      sample_rate=SR, dwt_sample_rate=dwt_rate)
            assert n <= 1_000_000, (name, seconds, n)
            rows = sum(h for h, _ in target_shapes(name=name, config=study.spectrogram).values())
            assert n < rows * study.spectrogram.width * 4 / 8  # at least 8x below float32 at the input size


def test_an_interrupted_run_leaves_no_accepted_output(tmp_path, monkeypatch):
    write_tones(tmp_path / "audio", freqs=[300 + 100 * i for i in range(20)])
    build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / "f", representation="stft", config=CONFIG,
                   clips_per_shard=3)
    assert len(list((tmp_path / "f" / "train").glob("spectrogram-*.npy"))) == 4  # 10 clips: 3 + 3 + 3 + 1

    real = extract._compute_task
    calls = []

    def dies_late(task):
        calls.append(task)
        if len(calls) == 4:  # mid-way through writing the train shards of the rerun
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(extract, "_compute_task", dies_late)
    with pytest.raises(KeyboardInterrupt):
        build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / "f", representation="stft", config=CONFIG,
                       clips_per_shard=3)
    out = tmp_path / "f"
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    for shard in out.rglob("*.npy"):  # whatever is there under a final name is complete
        assert np.load(shard, mmap_mode="r").shape[0] in (1, 3)
    with pytest.raises(DataError, match="meta.json"):
        open_features(out)
    monkeypatch.setattr(extract, "_compute_task", real)
    build_features(audio_dir=tmp_path / "audio", out_dir=out, representation="stft", config=CONFIG, clips_per_shard=3)
    assert len(open_features(out).train.load()) == 10
