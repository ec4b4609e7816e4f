"""Sound generators for the synthetic dataset, one per UrbanSound8K-like class.

Each generator takes two random generators: ``src`` draws what is fixed for one source recording (pitch,
rate, timbre) and is re-created from the same seed for every cut of that recording; ``clip`` draws what
differs between cuts (event timing, small jitter). Pitch and rate ranges of neighbouring classes overlap on
purpose (horn vs. street-music chords, drill vs. siren tones, engine vs. jackhammer pulse rates, bark vs.
babble voices) so the task is learnable but not trivial. Output: float64 ``(n,)``, unit RMS.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import signal

Generator = np.random.Generator
Sound = Callable[..., np.ndarray]
SOUNDS: dict[str, Sound] = {}


def _sound(name: str) -> Callable[[Sound], Sound]:
    def register(fn: Sound) -> Sound:
        SOUNDS[name] = fn
        return fn

    return register


# --- building blocks -------------------------------------------------------------------------------


def harmonic(*, f0: np.ndarray, sr: int, amps: np.ndarray, phase0: float = 0.0) -> np.ndarray:
    """Sum of harmonics ``amps[k-1] * sin(k * phase)`` of an instantaneous frequency track ``f0`` (Hz);
    harmonics above Nyquist are dropped."""
    phase = 2 * np.pi * np.cumsum(f0) / sr + phase0
    top = float(np.max(f0))
    out = np.zeros_like(phase)
    # sin(k p) by the Chebyshev recurrence sin(k p) = 2 cos(p) sin((k-1) p) - sin((k-2) p): one sin and
    # one cos in all instead of one sin per harmonic.
    s_prev, s_k, two_cos = np.zeros_like(phase), np.sin(phase), 2 * np.cos(phase)
    for k, a in enumerate(amps, start=1):
        if k * top >= sr / 2:
            break
        out += a * s_k
        s_prev, s_k = s_k, two_cos * s_k - s_prev
    return out


def colored_noise(*, rng: Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return x / (np.std(x) + 1e-12)


def band(*, x: np.ndarray, sr: int, lo: float | None, hi: float | None, order: int = 4) -> np.ndarray:
    """Butterworth band-, low- or high-pass (``lo``/``hi`` in Hz, None = open)."""
    nyq = sr / 2
    hi = None if hi is None or hi >= 0.95 * nyq else hi
    if lo is not None and hi is not None:
        sos = signal.butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")
    elif lo is not None:
        sos = signal.butter(order, lo, btype="highpass", fs=sr, output="sos")
    elif hi is not None:
        sos = signal.butter(order, hi, btype="lowpass", fs=sr, output="sos")
    else:
        return x
    return signal.sosfilt(sos, x)


def smooth_walk(*, rng: Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """Slow random fluctuation in about [-1, 1] with bandwidth ``rate_hz``."""
    x = band(x=rng.standard_normal(n), sr=sr, lo=None, hi=rate_hz, order=2)
    return x / (3 * np.std(x) + 1e-12)


def event_envelope(*, n: int, sr: int, start: float, dur: float, attack: float, decay: float | None) -> np.ndarray:
    """Envelope of one event starting at ``start`` s lasting ``dur`` s: linear attack, then either an
    exponential decay with time constant ``decay`` s or a flat hold with a short release."""
    t = np.arange(n) / sr - start
    env = np.zeros(n)
    on = (t >= 0) & (t < dur)
    ta = t[on]
    a = np.minimum(ta / attack, 1.0)
    if decay is None:
        rel = np.minimum((dur - ta) / 0.01, 1.0)
        env[on] = a * rel
    else:
        env[on] = a * np.exp(-np.maximum(ta - attack, 0.0) / decay)
    return env


def onsets(*, rng: Generator, count: int, seconds: float, dur: float, gap: float) -> list[float]:
    """``count`` sorted event onsets inside a clip of ``seconds`` with at least ``gap`` s between events."""
    span = max(seconds - dur, 0.0)
    times = np.sort(rng.uniform(0, span, size=count))
    for i in range(1, count):
        times[i] = max(times[i], times[i - 1] + gap)
    return [float(t) for t in times if t < seconds - 0.05]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


# --- the ten classes ------------------------------------------------------------------------------


@_sound("air_conditioner")
def air_conditioner(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    exponent, lo, hi = src.uniform(0.3, 1.5), src.uniform(60, 250), src.uniform(1200, 5000)
    hum_f0, hum_db = src.uniform(50, 140), src.uniform(-22, -8)
    am_rate, am_depth = src.uniform(0.1, 1.0), src.uniform(0.05, 0.25)
    t = np.arange(n) / sr
    bed = band(x=colored_noise(rng=clip, n=n, exponent=exponent), sr=sr, lo=lo, hi=hi)
    hum = harmonic(f0=np.full(n, hum_f0), sr=sr, amps=np.array([1.0, 0.5, 0.3]), phase0=clip.uniform(0, 6.3))
    x = _unit(bed) + 10 ** (hum_db / 20) * _unit(hum)
    return _unit(x * (1 + am_depth * np.sin(2 * np.pi * am_rate * t + clip.uniform(0, 6.3))))


@_sound("car_horn")
def car_horn(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    f0, ratio = src.uniform(260, 520), src.choice([1.2, 1.25, 1.26, 1.33])
    amps = 1.0 / np.arange(1, 10) ** src.uniform(0.6, 1.2)
    seconds = n / sr
    x = np.zeros(n)
    for start in onsets(rng=clip, count=int(clip.integers(1, 4)), seconds=seconds, dur=0.3, gap=0.4):
        dur = clip.uniform(0.2, 0.9)
        env = event_envelope(n=n, sr=sr, start=start, dur=dur, attack=0.01, decay=None)
        f = f0 * (1 + 0.005 * clip.standard_normal())
        chord = harmonic(f0=np.full(n, f), sr=sr, amps=amps) + harmonic(f0=np.full(n, f * ratio), sr=sr, amps=amps)
        x += env * chord
    return _unit(x)


@_sound("children_playing")
def children_playing(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    n_voices = int(src.integers(2, 6))
    x = np.zeros(n)
    for _ in range(n_voices):
        f0 = src.uniform(220, 480)
        f_track = f0 * (1 + 0.15 * smooth_walk(rng=clip, n=n, sr=sr, rate_hz=3.0))
        k = np.arange(1, 16)
        formants = src.uniform(500, 1000), src.uniform(1500, 3000)
        amps = sum(np.exp(-0.5 * ((k * f0 - fm) / 300) ** 2) for fm in formants) + 0.1 / k
        syllables = np.maximum(smooth_walk(rng=clip, n=n, sr=sr, rate_hz=clip.uniform(3, 6)), 0) ** 0.7
        x += syllables * harmonic(f0=f_track, sr=sr, amps=amps, phase0=clip.uniform(0, 6.3))
    breath = band(x=clip.standard_normal(n), sr=sr, lo=1000, hi=6000)
    return _unit(_unit(x) + 0.1 * _unit(breath))


@_sound("dog_bark")
def dog_bark(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    f0, drop = src.uniform(350, 900), src.uniform(0.15, 0.4)
    amps = 1.0 / np.arange(1, 11) ** 1.2
    noise_lo = src.uniform(400, 1000)
    x = np.zeros(n)
    t = np.arange(n) / sr
    for start in onsets(rng=clip, count=int(clip.integers(1, 6)), seconds=n / sr, dur=0.3, gap=0.15):
        dur = clip.uniform(0.08, 0.3)
        env = event_envelope(n=n, sr=sr, start=start, dur=dur, attack=0.005, decay=dur / 2.5)
        progress = np.clip((t - start) / dur, 0, 1)
        track = f0 * (1 + 0.05 * clip.standard_normal()) * (1 - drop * progress)
        noise = band(x=clip.standard_normal(n), sr=sr, lo=noise_lo, hi=noise_lo * 4)
        x += env * (harmonic(f0=track, sr=sr, amps=amps) + 0.5 * noise)
    return _unit(x)


@_sound("drilling")
def drilling(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    f0, wobble, wobble_rate = src.uniform(450, 1800), src.uniform(0.005, 0.04), src.uniform(5, 20)
    amps = np.array([1.0, 0.7, 0.5, 0.35, 0.2, 0.1])
    t = np.arange(n) / sr
    start = clip.uniform(0, 0.2 * n / sr)
    dur = clip.uniform(0.7, 1.0) * (n / sr - start)
    env = event_envelope(n=n, sr=sr, start=start, dur=dur, attack=0.15, decay=None)
    spin_up = 1 - 0.15 * np.exp(-np.maximum(t - start, 0) / 0.1)
    track = f0 * spin_up * (1 + wobble * np.sin(2 * np.pi * wobble_rate * t))
    noise = band(x=clip.standard_normal(n), sr=sr, lo=f0, hi=f0 * 6)
    return _unit(env * (harmonic(f0=track, sr=sr, amps=amps) + 0.3 * noise))


@_sound("engine_idling")
def engine_idling(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    rate, cutoff = src.uniform(20, 60), src.uniform(300, 900)
    n_harm = max(2, int(cutoff // rate))
    amps = 1.0 / np.arange(1, n_harm + 1) ** src.uniform(0.5, 1.0)
    t = np.arange(n) / sr
    track = rate * (1 + 0.02 * smooth_walk(rng=clip, n=n, sr=sr, rate_hz=0.5))
    pulses = harmonic(f0=track, sr=sr, amps=amps, phase0=clip.uniform(0, 6.3))
    uneven = 1 + src.uniform(0.1, 0.4) * np.sin(np.pi * rate * t / src.integers(2, 5))
    rumble = band(x=colored_noise(rng=clip, n=n, exponent=1.0), sr=sr, lo=None, hi=cutoff)
    return _unit(_unit(pulses * uneven) + 0.3 * _unit(rumble))


@_sound("gun_shot")
def gun_shot(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    tau, lo, hi = src.uniform(0.005, 0.04), src.uniform(100, 400), src.uniform(3000, 8000)
    thump_f, rt = src.uniform(60, 150), src.uniform(0.15, 0.7)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for start in onsets(rng=clip, count=int(clip.integers(1, 4)), seconds=n / sr, dur=0.2, gap=0.15):
        env = event_envelope(n=n, sr=sr, start=start, dur=n / sr, attack=0.001, decay=tau)
        crack = band(x=clip.standard_normal(n), sr=sr, lo=lo, hi=hi) * env
        thump = np.sin(2 * np.pi * thump_f * (t - start)) * event_envelope(
            n=n, sr=sr, start=start, dur=n / sr, attack=0.002, decay=4 * tau
        )
        x += _unit(crack) + 0.5 * _unit(thump)
    m = int(rt * sr)
    tail = clip.standard_normal(m) * np.exp(-np.arange(m) / (rt * sr / 6.9))
    wet = signal.fftconvolve(x, tail)[:n]
    return _unit(x + 0.2 * _unit(wet) * np.sqrt(np.mean(x**2)))


@_sound("jackhammer")
def jackhammer(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    rate, res, tau = src.uniform(12, 28), src.uniform(400, 2500), src.uniform(0.003, 0.01)
    m = int(6 * tau * sr)
    tm = np.arange(m) / sr
    ring = np.sin(2 * np.pi * res * tm) * np.exp(-tm / tau)
    hit = ring + 0.5 * clip.standard_normal(m) * np.exp(-tm / (tau / 2))
    impulses = np.zeros(n)
    seconds = n / sr
    for start in onsets(rng=clip, count=int(clip.integers(1, 4)), seconds=seconds, dur=0.4, gap=0.2):
        dur = clip.uniform(0.4, 1.5)
        times = np.arange(start, min(start + dur, seconds), 1 / (rate * (1 + 0.03 * clip.standard_normal())))
        idx = (times * sr).astype(int)
        impulses[idx[idx < n]] = 1 + 0.2 * clip.standard_normal(np.count_nonzero(idx < n))
    x = signal.fftconvolve(impulses, hit)[:n]
    return _unit(_unit(x) + 0.1 * colored_noise(rng=clip, n=n, exponent=0.5))


@_sound("siren")
def siren(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    center, depth = src.uniform(550, 1300), src.uniform(0.1, 0.4)
    yelp = src.uniform() < 0.4
    rate = src.uniform(2, 5) if yelp else src.uniform(0.15, 0.6)
    t = np.arange(n) / sr
    phase = 2 * np.pi * rate * t + clip.uniform(0, 6.3)
    sweep = signal.sawtooth(phase, width=0.5) if src.uniform() < 0.5 else np.sin(phase)
    doppler = 1 + 0.02 * smooth_walk(rng=clip, n=n, sr=sr, rate_hz=0.3)
    track = center * (1 + depth * sweep) * doppler
    return _unit(harmonic(f0=track, sr=sr, amps=np.array([1.0, 0.4, 0.2, 0.1])))


@_sound("street_music")
def street_music(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    tonic = src.uniform(110, 440)
    scale = np.array([0, 2, 4, 7, 9, 12]) if src.uniform() < 0.5 else np.array([0, 3, 5, 7, 10, 12])
    amps = 1.0 / np.arange(1, 9) ** src.uniform(1.0, 2.0)
    pluck = src.uniform() < 0.5
    seconds = n / sr
    x = np.zeros(n)
    t0 = clip.uniform(0, 0.3)
    while t0 < seconds - 0.05:
        dur = clip.uniform(0.12, 0.5)
        notes = clip.choice(scale, size=int(clip.integers(1, 3)), replace=False)
        i0, i1 = int(t0 * sr), min(int((t0 + dur) * sr) + 1, n)
        env = event_envelope(n=i1 - i0, sr=sr, start=0.0, dur=dur, attack=0.005, decay=dur / 2 if pluck else None)
        for semi in notes:
            x[i0:i1] += env * harmonic(f0=np.full(i1 - i0, tonic * 2 ** (semi / 12)), sr=sr, amps=amps)
        t0 += dur + clip.uniform(0, 0.1)
    return _unit(x)


def background(*, src: Generator, clip: Generator, n: int, sr: int) -> np.ndarray:
    """A city noise bed shared by all classes: coloured noise, low-passed, sometimes traffic rumble or a
    faint mains hum, so the bed alone says nothing about the class. Unit RMS."""
    exponent, cutoff = src.uniform(0.0, 2.0), src.uniform(2000, 10000)
    x = _unit(band(x=colored_noise(rng=clip, n=n, exponent=exponent), sr=sr, lo=None, hi=cutoff))
    if src.uniform() < 0.4:
        rumble = band(x=colored_noise(rng=clip, n=n, exponent=2.0), sr=sr, lo=None, hi=200)
        x += src.uniform(0.3, 1.0) * _unit(rumble)
    if src.uniform() < 0.3:
        hum = harmonic(f0=np.full(n, src.choice([50.0, 60.0])), sr=sr, amps=np.array([1.0, 0.5, 0.25]))
        x += src.uniform(0.05, 0.3) * _unit(hum)
    return _unit(x)
