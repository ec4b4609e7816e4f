"""Audio round trip of an STFT adversarial (advaudio.evaluation.roundtrip): known answers."""

import numpy as np
import pytest
import torch

from advaudio.evaluation.roundtrip import resize_adjoint, resize_pseudo_inverse, snr_db, stft_round_trip
from advaudio.features.resize import resize_batch
from advaudio.features.stft import power_db, stft_power

SR, N_FFT, HOP = 8000, 256, 64


def _tone(seconds=0.5, hz=440.0):
    t = np.arange(int(SR * seconds)) / SR
    return 0.5 * np.sin(2 * np.pi * hz * t)


@pytest.mark.parametrize("native, size", [((129, 63), (32, 32)), ((40, 20), (64, 48)), ((17, 9), (17, 9))])
def test_the_adjoint_of_the_resize_is_its_transpose(native, size):
    rng = np.random.default_rng(0)
    z, delta = rng.standard_normal(native), rng.standard_normal(size)
    resized = resize_batch(torch.from_numpy(z)[None], height=size[0], width=size[1])[0, 0].numpy()
    assert np.sum(resized * delta) == pytest.approx(np.sum(z * resize_adjoint(delta, native_shape=native)), rel=1e-10)
    if native == size:  # no resize: the identity
        np.testing.assert_allclose(resize_adjoint(delta, native_shape=native), delta)


def test_where_the_resize_stretches_time_the_native_perturbation_is_the_least_squares_fit():
    """The study's sizes stretch time (216 frames to 1568 columns): no native array resizes to an arbitrary
    delta, and R^+ delta satisfies the normal equations R^T (R z - delta) = 0."""
    native, size = (40, 12), (16, 50)
    delta = np.random.default_rng(2).standard_normal(size)
    z = resize_pseudo_inverse(delta, native_shape=native)
    resized = resize_batch(torch.from_numpy(z)[None], height=size[0], width=size[1])[0, 0].numpy()
    gradient = resize_adjoint(resized - delta, native_shape=native)
    assert np.abs(gradient).max() < 1e-8 * np.abs(resize_adjoint(delta, native_shape=native)).max()
    assert np.abs(resized - delta).max() > 0.1  # an exact fit is impossible here


@pytest.mark.parametrize("native, size", [((129, 63), (32, 32)), ((1025, 44), (32, 32)), ((17, 9), (17, 9))])
def test_the_native_perturbation_is_the_smallest_whose_resize_is_the_input_perturbation(native, size):
    rng = np.random.default_rng(1)
    delta = rng.standard_normal(size)
    z = resize_pseudo_inverse(delta, native_shape=native)
    resized = resize_batch(torch.from_numpy(z)[None], height=size[0], width=size[1])[0, 0].numpy()
    np.testing.assert_allclose(resized, delta, atol=1e-8 * np.abs(delta).max())
    # minimum norm: z is in the range of R^T, so adding anything the resize cannot see only makes it longer
    null = rng.standard_normal(native)
    null -= resize_pseudo_inverse(resize_batch(torch.from_numpy(null)[None], height=size[0],
                                               width=size[1])[0, 0].numpy(), native_shape=native)
    assert np.abs(resize_batch(torch.from_numpy(null)[None], height=size[0], width=size[1]).numpy()).max() < 1e-8
    assert abs(np.sum(z * null)) <= 1e-6 * np.linalg.norm(z) * np.linalg.norm(null)


def test_a_zero_perturbation_gives_the_clean_clip_and_its_features_back():
    y = _tone()
    back = stft_round_trip(y=y, delta=np.zeros((32, 32)), lo=-60.0, hi=20.0, n_fft=N_FFT, hop_length=HOP)
    assert np.max(np.abs(back - y)) < 1e-9  # Hann at 75 % overlap: the STFT inverts exactly (float64 noise)
    clean_db = power_db(power=stft_power(y=y, n_fft=N_FFT, hop_length=HOP), top_db=80.0)
    back_db = power_db(power=stft_power(y=back, n_fft=N_FFT, hop_length=HOP), top_db=80.0)
    assert np.max(np.abs(back_db - clean_db)) < 1e-6  # dB, the tolerance the round-trip report can state
    assert snr_db(clean=y, adversarial=back) > 150


def test_a_uniform_6_db_perturbation_doubles_the_waveform():
    """Without a resize (input size = native size) the adjoint is the identity, so a perturbation of
    6.0206 dB / (hi - lo) in every bin is a gain of exactly 2 on the whole STFT: the waveform doubles."""
    y = _tone()
    native = (1 + N_FFT // 2, 1 + len(y) // HOP)
    lo, hi = -60.0, 20.0
    delta = np.full(native, 20 * np.log10(2.0) / (hi - lo))
    back = stft_round_trip(y=y, delta=delta, lo=lo, hi=hi, n_fft=N_FFT, hop_length=HOP)
    np.testing.assert_allclose(back, 2 * y, atol=1e-9)
    assert snr_db(clean=y, adversarial=back) == pytest.approx(0.0, abs=1e-9)  # noise = y: as loud as the clip


def test_a_perturbation_in_one_band_changes_the_sound_in_that_band_only():
    """+delta on the input rows around 440 Hz raises the 440 Hz tone and leaves a 2 kHz tone alone."""
    y_low, y_high = _tone(hz=440.0), _tone(hz=2000.0)
    y = y_low + y_high
    native = (1 + N_FFT // 2, 1 + len(y) // HOP)
    delta = np.zeros(native)
    row = round(440 * N_FFT / SR)  # STFT bin of 440 Hz: 14
    delta[row - 3 : row + 4] = 6.0 / 80.0  # +6 dB (hi - lo = 80) on 7 bins around it, no resize
    back = stft_round_trip(y=y, delta=delta, lo=-60.0, hi=20.0, n_fft=N_FFT, hop_length=HOP)
    spectrum = np.abs(np.fft.rfft(back)) / np.abs(np.fft.rfft(y)).clip(1e-12)
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    assert spectrum[np.argmin(np.abs(freqs - 440))] == pytest.approx(10 ** (6 / 20), rel=0.02)
    assert spectrum[np.argmin(np.abs(freqs - 2000))] == pytest.approx(1.0, rel=0.01)


def test_snr_known_answers():
    y = _tone()
    assert snr_db(clean=y, adversarial=y) == float("inf")
    assert snr_db(clean=y, adversarial=1.1 * y) == pytest.approx(20.0)
    assert snr_db(clean=np.zeros(4), adversarial=np.ones(4)) == float("-inf")


@pytest.mark.parametrize("representation", ["stft", "stft_tonnetz"])
def test_the_round_trip_analyses_a_sound_exactly_as_the_pipeline_does(tmp_path, rng, representation):
    """InputMaker on the clean clips gives the stored features as the reader serves them, bit for bit; a zero
    perturbation round-trips to inputs within float16 storage's step (2^-11) of them."""
    from advaudio.evaluation.roundtrip_run import InputMaker, _victim_clips
    from advaudio.features.extract import build_features
    from advaudio.features.store import open_split, read_meta
    from test_features_stage import CONFIG, SR as AUDIO_SR, write_fake_audio

    write_fake_audio(tmp_path / "audio", rng=rng)
    build_features(audio_dir=tmp_path / "audio", out_dir=tmp_path / "features", representation=representation,
                   config=CONFIG, dataset="synth")
    meta = read_meta(tmp_path / "features")
    test = open_split(tmp_path / "features", "test", meta=meta)
    rows = np.arange(len(test))
    clips = _victim_clips(features=tmp_path / "features", audio=tmp_path / "audio", rows=rows)
    maker = InputMaker(meta=meta, config=CONFIG, sample_rate=AUDIO_SR, dwt_sample_rate=AUDIO_SR,
                       device=torch.device("cpu"))
    stored = test.read(rows)
    assert torch.equal(maker.inputs(clips), stored)
    spec_rows = maker.targets["spectrogram"][0]
    back = [stft_round_trip(y=y, delta=np.zeros((spec_rows, stored.shape[-1])), lo=meta["scaling"]["lo"],
                            hi=meta["scaling"]["hi"], n_fft=CONFIG.n_fft, hop_length=CONFIG.hop_length) for y in clips]
    assert (maker.inputs(back) - stored).abs().max() <= 2.0**-11
