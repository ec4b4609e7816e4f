"""STFT, tonnetz, resize and every registered representation: known answers and properties."""

import numpy as np
import pytest

from advaudio.config import SpectrogramConfig
from advaudio.errors import ConfigError, DataError
from advaudio.features.representations import REPRESENTATIONS, n_rows, target_shapes
from advaudio.features.resize import resize
from advaudio.features.scaling import fit_block, sample_step, scale_block
from advaudio.features.stft import power_db, stft_power
from advaudio.features.tonnetz import tonnetz

SR = 22050


def tone(freq, seconds=1.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(SR * seconds)) / SR)).astype(np.float32)


def test_stft_tone_peaks_at_its_bin():
    power = stft_power(y=tone(1000.0), n_fft=2048, hop_length=512)
    assert power.shape[0] == 1025
    assert np.argmax(power.mean(axis=1)) == round(1000.0 * 2048 / SR)


def test_fixed_reference_keeps_the_level():
    quiet, loud = (power_db(power=stft_power(y=tone(440.0, amp=a)), top_db=80.0) for a in (0.1, 0.2))
    assert loud.max() - quiet.max() == pytest.approx(20 * np.log10(2), abs=1e-3)


def test_tonnetz_shape_and_range(rng):
    y = np.concatenate([tone(261.6, 0.5) + tone(329.6, 0.5), 0.1 * rng.standard_normal(SR // 2).astype(np.float32)])
    out = tonnetz(y=y, sample_rate=SR)
    assert out.shape == (6, 1 + len(y) // 512)
    assert np.all(np.isfinite(out)) and out.min() >= -1.0 and out.max() <= 1.0 and np.ptp(out) > 0.1


def test_resize_antialiases_and_keeps_constants():
    stripes = np.tile([[0.0], [1.0]], (64, 10))  # (128, 10) alternating rows
    assert resize(image=stripes, height=8, width=10) == pytest.approx(0.5, abs=0.02)  # not 0 or 1
    assert resize(image=np.full((7, 5), 3.0), height=20, width=9) == pytest.approx(3.0)
    assert resize(image=np.ones((3, 4)), height=6, width=2).shape == (6, 2)


CONFIG = SpectrogramConfig(height=20, width=10, tonnetz_height=5, dwt_scales=32, dwt_fmin=50.0)


@pytest.mark.parametrize("name", REPRESENTATIONS.names())
def test_every_representation_is_finite_has_its_predicted_shape_and_scales_into_unit_range(name, rng):
    rep = REPRESENTATIONS.get(name)
    clips = [tone(700.0), 0.2 * rng.standard_normal(SR).astype(np.float32), tone(3000.0, amp=0.05)]
    for sample_rate, y in ((SR, clips[0]), (44100, np.repeat(clips[0], 2)), (16000, clips[0][:16000])):
        shapes = rep.native_shapes(n_samples=len(y), sample_rate=sample_rate, dwt_sample_rate=8000, config=CONFIG)
        for block in rep.blocks:
            out = rep.compute(block, y=y, sample_rate=sample_rate, dwt_sample_rate=8000, config=CONFIG)
            assert out.shape == shapes[block], (block, sample_rate)
    assert n_rows(name=name, config=CONFIG) == sum(h for h, _ in target_shapes(name=name, config=CONFIG).values())
    for block in rep.blocks:
        out = np.stack([rep.compute(block, y=y, sample_rate=SR, dwt_sample_rate=16000, config=CONFIG) for y in clips])
        assert out.dtype == np.float32 and np.all(np.isfinite(out))
        lo, hi = fit_block(values=out, percentile=0.5, block=block)
        scaled = scale_block(values=out, lo=lo, hi=hi)
        assert scaled.dtype == np.float16 and scaled.min() >= 0.0 and scaled.max() <= 1.0 and np.ptp(scaled) > 0


@pytest.mark.parametrize("name", ["stft", "dwt"])
def test_row_zero_is_the_lowest_frequency(name):
    rep = REPRESENTATIONS.get(name)
    low, high = (rep.compute("spectrogram", y=tone(f), sample_rate=SR, dwt_sample_rate=16000, config=CONFIG)
                 for f in (150.0, 5000.0))
    assert np.argmax(low.mean(axis=1)) < np.argmax(high.mean(axis=1))


def test_unknown_representation_lists_the_allowed():
    with pytest.raises(ConfigError, match=r"\['dwt', 'dwt_tonnetz', 'stft', 'stft_tonnetz'\]"):
        REPRESENTATIONS.get("mel")


def test_scaling_maps_the_percentiles_to_0_and_1_and_clips():
    values = np.linspace(-80, 0, 4, dtype=np.float32)[:, None, None] * np.ones((4, 5, 3), np.float32)
    assert fit_block(values=values, percentile=0.0, block="spectrogram") == (-80.0, 0.0)
    scaled = scale_block(values=values, lo=-80.0, hi=0.0)
    np.testing.assert_allclose(scaled[:, 0, 0], [0, 1 / 3, 2 / 3, 1], atol=5e-4)  # float16
    assert scale_block(values=np.array([-100.0, 10.0]), lo=-80.0, hi=0.0).tolist() == [0.0, 1.0]
    with pytest.raises(DataError, match="tonnetz features are constant"):
        fit_block(values=np.zeros(10), percentile=0.5, block="tonnetz")
    with pytest.raises(DataError, match="spectrogram features hold NaN"):
        fit_block(values=np.array([0.0, np.nan]), percentile=0.5, block="spectrogram")


def test_percentile_sample_strides_over_clips_above_the_cap():
    assert sample_step(n_clips=100, values_per_clip=1000) == 1
    assert sample_step(n_clips=7000, values_per_clip=1025 * 216) == 7000 * 1025 * 216 // (1 << 24)
