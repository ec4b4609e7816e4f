"""WAV decoding: every subtype, channel count and rate decodes to the right tone; bad files fail clearly."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from advaudio.data.wav import load_wav
from advaudio.errors import DataError

TARGET_SR = 22050


def tone(*, freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def peak_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.argmax(spec) * sr / y.size)


def write(path: Path, data: np.ndarray, sr: int, subtype: str, fmt: str = "WAV") -> Path:
    sf.write(path, data, sr, subtype=subtype, format=fmt)
    return path


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_every_subtype_and_channel_count_keeps_a_tone(tmp_path, subtype, channels):
    sr = 44100
    y = tone(freq=1000.0, sr=sr, seconds=1.0)
    data = np.repeat(y[:, None], channels, axis=1) if channels > 1 else y
    path = write(tmp_path / f"t_{subtype}_{channels}.wav", data, sr, subtype)
    out = load_wav(path, sample_rate=TARGET_SR, n_samples=TARGET_SR)
    assert out.dtype == np.float32 and out.shape == (TARGET_SR,)
    assert abs(peak_hz(out, TARGET_SR) - 1000.0) <= 2.0
    # Amplitude survives decoding, downmix and resampling (8-bit adds about -48 dB of noise).
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


@pytest.mark.parametrize("sr", [11025, 44100, 48000])
def test_resampling_keeps_frequency(tmp_path, sr):
    path = write(tmp_path / "t.wav", tone(freq=440.0, sr=sr, seconds=1.0), sr, "PCM_16")
    out = load_wav(path, sample_rate=TARGET_SR, n_samples=TARGET_SR)
    assert abs(peak_hz(out, TARGET_SR) - 440.0) <= 2.0


def test_wave_format_extensible(tmp_path):
    y = tone(freq=2000.0, sr=48000, seconds=0.5)
    path = write(tmp_path / "x.wav", np.stack([y, y, y, y, y, y], axis=1), 48000, "PCM_24", fmt="WAVEX")
    assert path.read_bytes()[20:22] == b"\xfe\xff"  # wFormatTag = WAVE_FORMAT_EXTENSIBLE
    out = load_wav(path, sample_rate=TARGET_SR, n_samples=TARGET_SR // 2)
    assert abs(peak_hz(out, TARGET_SR) - 2000.0) <= 4.0


def test_downmix_averages_channels(tmp_path):
    y = tone(freq=500.0, sr=TARGET_SR, seconds=0.5)
    path = write(tmp_path / "s.wav", np.stack([y, np.zeros_like(y)], axis=1), TARGET_SR, "FLOAT")
    out = load_wav(path, sample_rate=TARGET_SR, n_samples=y.size)
    np.testing.assert_allclose(out, (y / 2).astype(np.float32), atol=1e-7)


def test_short_clip_is_padded_and_long_clip_trimmed(tmp_path, rng):
    short = rng.uniform(-0.5, 0.5, size=300)
    out = load_wav(write(tmp_path / "a.wav", short, TARGET_SR, "FLOAT"), sample_rate=TARGET_SR, n_samples=1000)
    np.testing.assert_array_equal(out[:300], short.astype(np.float32))
    assert np.all(out[300:] == 0)
    long = rng.uniform(-0.5, 0.5, size=5000)
    out = load_wav(write(tmp_path / "b.wav", long, TARGET_SR, "FLOAT"), sample_rate=TARGET_SR, n_samples=1000)
    np.testing.assert_array_equal(out, long[:1000].astype(np.float32))


@pytest.mark.parametrize(
    "case, expected",
    [
        ("zero_length", "zero length"),
        ("silent", "silent"),
        ("nan", "NaN"),
        ("inf", "infinite"),
        ("missing", "not found"),
        ("garbage", "not a readable audio file"),
        ("empty_file", "not a readable audio file"),
    ],
)
def test_bad_input_names_the_file(tmp_path, case, expected):
    path = tmp_path / f"{case}.wav"
    y = tone(freq=440.0, sr=8000, seconds=0.1)
    if case == "zero_length":
        write(path, np.zeros(0), 8000, "PCM_16")
    elif case == "silent":
        write(path, np.zeros((800, 2)), 8000, "PCM_16")
    elif case in ("nan", "inf"):
        y[10] = np.nan if case == "nan" else np.inf
        write(path, y, 8000, "FLOAT")
    elif case == "garbage":
        path.write_bytes(b"RIFF\x00\x00garbage, not audio" * 10)
    elif case == "empty_file":
        path.write_bytes(b"")
    with pytest.raises(DataError, match=expected) as info:
        load_wav(path, sample_rate=TARGET_SR, n_samples=100)
    assert str(path) in str(info.value)
