"""Wavelet features: the FFT-domain Morlet bank against librosa + pywt.cwt (conv), same run, same clips.

Prints clips/s of both paths (each: resample to the DWT rate, transform, frame power), their ratio, and
the correlation (log power, dB with the representation's floor) of both against pywt.cwt at precision 16
at equal output size. Also prints clips/s of the full project representations (native blocks, as stored).
Run single-threaded: ``OMP_NUM_THREADS=1 python benchmarks/bench_features.py``.
"""

import argparse
import time

import librosa
import numpy as np
import scipy.signal

from advaudio.config import SpectrogramConfig
from advaudio.features.representations import REPRESENTATIONS
from advaudio.features.stft import power_db
from advaudio.features.wavelet import cached_filter_bank, reference_wavelet_power, wavelet_frequencies


def make_clips(*, n: int, seconds: float, sample_rate: int) -> list[np.ndarray]:
    """Chirp + noise + tone bursts, different per clip (seeded)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    clips = []
    for _ in range(n):
        y = 0.3 * scipy.signal.chirp(t, rng.uniform(50, 200), t[-1], rng.uniform(3000, 7000), method="logarithmic")
        y += 0.05 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * rng.uniform(300, 2000) * t) * (t % 1 < 0.3)
        clips.append(y.astype(np.float32))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--scales", type=int, default=256)
    parser.add_argument("--dwt-rate", type=int, default=16000)
    args = parser.parse_args()
    sr = 22050
    cfg = SpectrogramConfig(dwt_scales=args.scales)
    clips = make_clips(n=args.clips, seconds=args.seconds, sample_rate=sr)
    freqs = wavelet_frequencies(sample_rate=args.dwt_rate, n_scales=args.scales, fmin=cfg.dwt_fmin, cycles=cfg.dwt_cycles)
    n = int(args.seconds * args.dwt_rate)
    bank = cached_filter_bank(n_samples=n, sample_rate=args.dwt_rate, n_scales=args.scales, fmin=cfg.dwt_fmin,
                              cycles=cfg.dwt_cycles, hop_length=cfg.dwt_hop_length)
    down = [librosa.resample(y, orig_sr=sr, target_sr=args.dwt_rate) for y in clips]  # warm-up + for precision 16

    def reference(y: np.ndarray, precision: int) -> np.ndarray:
        return reference_wavelet_power(y=y, sample_rate=args.dwt_rate, frequencies=freqs, cycles=cfg.dwt_cycles,
                                       hop_length=cfg.dwt_hop_length, precision=precision)

    bank(down[0])  # warm-up
    start = time.perf_counter()
    fast = [bank(librosa.resample(y, orig_sr=sr, target_sr=args.dwt_rate)) for y in clips]
    fast_s = (time.perf_counter() - start) / len(clips)
    start = time.perf_counter()
    slow = [reference(librosa.resample(y, orig_sr=sr, target_sr=args.dwt_rate), 10) for y in clips]
    slow_s = (time.perf_counter() - start) / len(clips)
    truth = [reference(y, 16) for y in down]

    def corr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
        da = np.concatenate([power_db(power=p, top_db=cfg.top_db).ravel() for p in a])
        db = np.concatenate([power_db(power=p, top_db=cfg.top_db).ravel() for p in b])
        return float(np.corrcoef(da, db)[0, 1])

    print(f"clips: {len(clips)} x {args.seconds} s; DWT at {args.dwt_rate} Hz, {args.scales} scales, "
          f"output {fast[0].shape} (scales x frames) for both paths")
    print(f"project  (FFT-domain Morlet bank): {1 / fast_s:8.2f} clips/s  ({1000 * fast_s:8.1f} ms/clip)")
    print(f"reference (pywt.cwt conv, prec 10): {1 / slow_s:8.2f} clips/s  ({1000 * slow_s:8.1f} ms/clip)")
    print(f"speed-up: {slow_s / fast_s:.0f}x")
    print(f"correlation vs pywt.cwt precision 16: project {corr(fast, truth):.5f}, "
          f"pywt precision 10 {corr(slow, truth):.5f}")
    def represent(name: str, y: np.ndarray) -> list[np.ndarray]:
        rep = REPRESENTATIONS.get(name)
        return [rep.compute(b, y=y, sample_rate=sr, dwt_sample_rate=args.dwt_rate, config=cfg) for b in rep.blocks]

    for name in REPRESENTATIONS.names():
        represent(name, clips[0])  # warm-up
        start = time.perf_counter()
        for y in clips:
            represent(name, y)
        print(f"representation {name:13s}: {len(clips) / (time.perf_counter() - start):8.2f} clips/s (native blocks)")


if __name__ == "__main__":
    main()
