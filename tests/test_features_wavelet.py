"""The FFT-domain Morlet filter bank: known answers and agreement with pywt.cwt (precision 16)."""

import numpy as np
import pytest
import scipy.signal

from advaudio.errors import ConfigError
from advaudio.features.stft import power_db
from advaudio.features.wavelet import (
    MorletFilterBank,
    morlet_bandwidth,
    reference_wavelet_power,
    wavelet_frequencies,
)

SR = 8000
HOP = 128
TOP_DB = 60.0


def bank(n_samples, freqs):
    return MorletFilterBank(n_samples=n_samples, sample_rate=SR, frequencies=freqs, cycles=6.0, hop_length=HOP)


def test_bandwidth_gives_one_sixth_relative_sigma_at_six_cycles():
    # std of exp(-pi^2 B (u - 1)^2) is 1 / (pi sqrt(2B)); with 6 cycles it must be 1/6 of the centre
    assert 1.0 / (np.pi * np.sqrt(2 * morlet_bandwidth(cycles=6.0))) == pytest.approx(1.0 / 6.0)


def test_frequencies_ascend_and_stay_below_nyquist():
    f = wavelet_frequencies(sample_rate=SR, n_scales=40, fmin=50.0, cycles=6.0)
    assert f[0] == pytest.approx(50.0) and np.all(np.diff(f) > 0) and f[-1] < SR / 2
    with pytest.raises(ConfigError, match="dwt_fmin"):
        wavelet_frequencies(sample_rate=SR, n_scales=40, fmin=5000.0, cycles=6.0)


def test_tone_peaks_at_the_scale_of_its_frequency():
    t = np.arange(SR) / SR
    freqs = wavelet_frequencies(sample_rate=SR, n_scales=64, fmin=50.0, cycles=6.0)
    power = bank(SR, freqs)(np.sin(2 * np.pi * 1000.0 * t))
    peak = freqs[np.argmax(power.mean(axis=1))]
    step = freqs[1] / freqs[0]
    assert abs(np.log(peak / 1000.0)) <= np.log(step) * 1.01  # within one scale step of 1 kHz


def test_shape_and_silence():
    freqs = wavelet_frequencies(sample_rate=SR, n_scales=16, fmin=50.0, cycles=6.0)
    fb = bank(SR, freqs)
    out = fb(np.zeros(SR))
    assert out.shape == (16, SR // HOP - 1) and np.all(out == 0)
    with pytest.raises(ConfigError, match="multiple of 4"):
        MorletFilterBank(n_samples=SR, sample_rate=SR, frequencies=freqs, cycles=6.0, hop_length=130)


@pytest.mark.parametrize("signal", ["chirp", "noise"])
def test_log_power_correlates_with_pywt_precision_16(signal, rng):
    n = SR // 2
    t = np.arange(n) / SR
    y = (scipy.signal.chirp(t, 60.0, t[-1], 3000.0, method="logarithmic") if signal == "chirp"
         else rng.standard_normal(n))
    freqs = wavelet_frequencies(sample_rate=SR, n_scales=48, fmin=60.0, cycles=6.0)
    fast = power_db(power=bank(n, freqs)(y), top_db=TOP_DB)
    ref = power_db(power=reference_wavelet_power(y=y, sample_rate=SR, frequencies=freqs, cycles=6.0,
                                                 hop_length=HOP, precision=16), top_db=TOP_DB)
    assert fast.shape == ref.shape
    assert np.corrcoef(fast.ravel(), ref.ravel())[0, 1] >= 0.99


def test_matches_the_defining_sum_on_noise(rng):
    """c_s[n] = s^-1/2 sum_k x[k] psi((k - n) / s), evaluated directly at a few points."""
    n = 2000
    y = rng.standard_normal(n)
    freqs = wavelet_frequencies(sample_rate=SR, n_scales=8, fmin=200.0, cycles=6.0)
    fb = MorletFilterBank(n_samples=n, sample_rate=SR, frequencies=freqs, cycles=6.0, hop_length=HOP)
    coef = fb.coefficients(y)
    b = morlet_bandwidth(cycles=6.0)
    k = np.arange(n)
    for i in (0, 3):  # scales far from Nyquist, where the sampled wavelet is analytic
        s = SR / freqs[i]
        for m in (3, 40, 60):
            u = (k - m * fb.delta) / s
            psi = np.exp(-(u**2) / b) * np.exp(2j * np.pi * u) / np.sqrt(np.pi * b)
            direct = abs(np.sum(y * psi) / np.sqrt(s))
            # the fast path also carries pywt's sinc(f) box factor, ~1 - (pi f)^2 / 6 at low f
            assert abs(coef[i, m]) == pytest.approx(direct, rel=0.02)
