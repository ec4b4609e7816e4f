"""Pitch shift: a tone moves to scale * f at unchanged length; the pool gives the serial result."""

import numpy as np
import pytest

from advaudio.data.augment import augment_rows, pitch_shift, semitones
from advaudio.parallel import SerialMap, worker_pool

SR = 22050


def peak_hz(y, sr):
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.argmax(spec) * sr / y.size)


def test_semitones_known_answers():
    assert semitones(scale=2.0) == pytest.approx(12.0)
    assert semitones(scale=1.5) == pytest.approx(7.01955, abs=1e-4)
    assert semitones(scale=0.5) == pytest.approx(-12.0)


@pytest.mark.parametrize("scale", [0.75, 0.9, 1.15, 1.5])
def test_tone_lands_at_scaled_frequency(scale):
    t = np.arange(SR) / SR
    y = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    out = pitch_shift(y=y, sample_rate=SR, scale=scale)
    assert out.shape == y.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    assert peak_hz(out[2048:-2048], SR) == pytest.approx(440.0 * scale, rel=0.01)


def test_pool_matches_serial(rng):
    audio = rng.uniform(-0.5, 0.5, size=(3, 4000)).astype(np.float32)
    serial = list(augment_rows(read=audio.__getitem__, rows=[0, 2], scales=[0.9, 1.0, 1.5], sample_rate=8000, pool=SerialMap()))
    assert [(r, s) for r, s, _ in serial] == [(0, 0.9), (2, 0.9), (0, 1.5), (2, 1.5)]  # 1.0 is the original
    with worker_pool(workers=2) as pool:
        parallel = list(augment_rows(read=audio.__getitem__, rows=[0, 2], scales=[0.9, 1.0, 1.5], sample_rate=8000, pool=pool))
    for (r1, s1, y1), (r2, s2, y2) in zip(serial, parallel, strict=True):
        assert (r1, s1) == (r2, s2)
        np.testing.assert_array_equal(y1, y2)
