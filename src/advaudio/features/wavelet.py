"""Complex-Morlet wavelet power on 50 %-overlapping frames, by FFT-domain filtering.

The wavelet is pywt's ``cmorB-C`` with ``C = 1`` and ``B = 2 (cycles / 2 pi)^2``, so ``cycles = 6`` is the
classic Morlet (omega0 = 6) and a scale ``s`` (in samples) has centre frequency ``sample_rate / s``.
``pywt.cwt(x, s, 'cmorB-1.0', method='conv')`` computes ``c_s[n] = s^-1/2 sum_k x[k] psi((k - n) / s)``,
whose frequency response is ``sqrt(s) exp(-pi^2 B (s f - 1)^2)`` (f in cycles per sample); |c| is the same for
the positive- and the negative-frequency copy of a real signal, so only the positive half is used here.

Fast path (:class:`MorletFilterBank`): FFT the zero-padded clip once; for each scale take only the FFT bins
within +-5 standard deviations of the Gaussian, weight them, fold them modulo a short length ``M`` and
inverse-FFT that: folding the spectrum is exactly sampling ``c_s`` every ``delta = L / M`` samples, so the
short transform yields the coefficients on a decimated grid (4 points per frame hop) without computing the
full-rate signal. Frequency shifts of the band only change the phase, which ``|c|`` discards. All scales'
band-and-fold steps are one precomputed sparse matrix, so a clip costs one rFFT, one sparse product and one
batched short iFFT.

Frames: hop ``hop_length`` samples, length ``2 * hop_length`` (50 % overlap); a frame's value is the mean
of ``|c|^2`` over the grid points inside it. :func:`reference_wavelet_power` computes the same frames from
``pywt.cwt`` (the slow reference used by tests and the benchmark).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.sparse

from advaudio.errors import ConfigError

POINTS_PER_HOP = 4  # grid points of |c| per frame hop; hop_length must be a multiple of it
BAND_SIGMAS = 5.0  # half-width of the band of FFT bins kept per scale, in Gaussian standard deviations


def morlet_bandwidth(*, cycles: float) -> float:
    """pywt's cmor bandwidth ``B`` for a Morlet with ``cycles`` (omega0): ``B = 2 (cycles / 2 pi)^2``.

    With centre frequency 1, the Gaussian's standard deviation in frequency is ``f / cycles``.
    """
    return 2.0 * (cycles / (2.0 * math.pi)) ** 2


def pywt_wavelet_name(*, cycles: float) -> str:
    """The pywt wavelet name (``'cmorB-1.0'``) matching :func:`morlet_bandwidth`."""
    return f"cmor{morlet_bandwidth(cycles=cycles)!r}-1.0"


def wavelet_frequencies(*, sample_rate: int, n_scales: int, fmin: float, cycles: float) -> np.ndarray:
    """Centre frequencies (Hz), ascending and log-spaced from ``fmin`` to near Nyquist.

    The top frequency is ``nyquist / (1 + 1 / cycles)``: its band's upper one-sigma edge sits at Nyquist,
    so the top rows are not half cut off.

    Raises
    ------
    ConfigError
        If ``fmin`` is not below that top frequency.
    """
    fmax = (sample_rate / 2.0) / (1.0 + 1.0 / cycles)
    if not fmin < fmax:
        raise ConfigError(
            f"spectrogram.dwt_fmin = {fmin} Hz must be below {fmax:.1f} Hz, the top wavelet frequency at "
            f"a DWT sample rate of {sample_rate} Hz"
        )
    return np.geomspace(fmin, fmax, n_scales)


def n_wavelet_frames(*, n_samples: int, hop_length: int) -> int:
    """Number of 50 %-overlapping frames (length ``2 * hop_length``) that fit in ``n_samples``."""
    return max(n_samples // hop_length - 1, 0)


class MorletFilterBank:
    """Precomputed FFT-domain Morlet filter bank for clips of one length.

    Parameters
    ----------
    n_samples : int
        Clip length in samples (at ``sample_rate``).
    sample_rate : int
        The rate the clip is at (the DWT sample rate).
    frequencies : np.ndarray
        Centre frequencies in Hz, one per output row.
    cycles : float
        Morlet cycles (omega0); see :func:`morlet_bandwidth`.
    hop_length : int
        Frame hop in samples; a multiple of :data:`POINTS_PER_HOP`.
    """

    def __init__(
        self, *, n_samples: int, sample_rate: int, frequencies: np.ndarray, cycles: float, hop_length: int
    ) -> None:
        if hop_length % POINTS_PER_HOP:
            raise ConfigError(
                f"spectrogram.dwt_hop_length = {hop_length} must be a multiple of {POINTS_PER_HOP}"
            )
        self.n_samples = n_samples
        self.hop_length = hop_length
        self.n_frames = n_wavelet_frames(n_samples=n_samples, hop_length=hop_length)
        if self.n_frames < 1:
            raise ConfigError(
                f"a clip of {n_samples} samples is shorter than one wavelet frame "
                f"(2 * spectrogram.dwt_hop_length = {2 * hop_length})"
            )
        bandwidth = morlet_bandwidth(cycles=cycles)
        scales = sample_rate / np.asarray(frequencies, dtype=np.float64)
        self.delta = hop_length // POINTS_PER_HOP
        # Zero padding of half the longest filter (5 sigma in time) keeps the circular convolution linear.
        sigma_t = scales.max() * math.sqrt(bandwidth / 2.0)
        n_grid = scipy.fft.next_fast_len(math.ceil((n_samples + BAND_SIGMAS * sigma_t) / self.delta))
        self.n_grid = n_grid
        self.n_fft = n_grid * self.delta
        self.n_valid = (self.n_frames + 1) * POINTS_PER_HOP  # grid points used by the frames
        self.matrix = _fold_matrix(
            n_fft=self.n_fft, n_grid=n_grid, scales=scales, bandwidth=bandwidth, delta=self.delta
        )

    def coefficients(self, y: np.ndarray) -> np.ndarray:
        """Complex coefficients on the grid ``n = m * delta``, shape (n_scales, n_grid)."""
        if y.shape != (self.n_samples,):
            raise ValueError(f"expected a clip of shape ({self.n_samples},), got {y.shape}")
        spectrum = scipy.fft.rfft(y.astype(np.float64), n=self.n_fft)
        folded = (self.matrix @ spectrum).reshape(-1, self.n_grid)
        # Folding the band modulo n_grid samples c every delta samples; ifft's 1/n_grid leaves 1/delta.
        return scipy.fft.ifft(folded, axis=1) / self.delta

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """Frame power ``mean |c|^2``, shape (n_scales, n_frames), rows ascending in frequency."""
        power = np.abs(self.coefficients(y)[:, : self.n_valid]) ** 2
        return frames_from_grid(power=power)


def frames_from_grid(*, power: np.ndarray) -> np.ndarray:
    """Mean over 50 %-overlapping frames of ``2 * POINTS_PER_HOP`` grid points, hop ``POINTS_PER_HOP``.

    ``power`` is (n_scales, n_points) with n_points a multiple of POINTS_PER_HOP.
    """
    n_scales, n_points = power.shape
    per_hop = power.reshape(n_scales, n_points // POINTS_PER_HOP, POINTS_PER_HOP).mean(axis=2)
    return 0.5 * (per_hop[:, :-1] + per_hop[:, 1:])


def _fold_matrix(
    *, n_fft: int, n_grid: int, scales: np.ndarray, bandwidth: float, delta: int
) -> scipy.sparse.csr_matrix:
    """Sparse (n_scales * n_grid, n_fft // 2 + 1) matrix: weight each scale's band of rFFT bins, fold it."""
    n_bins = n_fft // 2 + 1
    rows, cols, vals = [], [], []
    sigma_f = 1.0 / (math.pi * math.sqrt(2.0 * bandwidth))  # std of exp(-pi^2 B (u - 1)^2) in u = s f
    for i, s in enumerate(scales):
        lo = max(0, math.floor((1.0 - BAND_SIGMAS * sigma_f) / s * n_fft))
        hi = min(n_bins, math.ceil((1.0 + BAND_SIGMAS * sigma_f) / s * n_fft) + 1)
        k = np.arange(lo, hi)
        weight = math.sqrt(s) * np.exp(-(math.pi**2) * bandwidth * (s * k / n_fft - 1.0) ** 2)
        # pywt differentiates the integrated wavelet over one sample, i.e. box-filters it: sinc(f).
        weight *= np.sinc(k / n_fft)
        rows.append(i * n_grid + (k - lo) % n_grid)
        cols.append(k)
        vals.append(weight)
    # A band wider than n_grid wraps onto the same rows; the product with the spectrum adds the wrapped
    # bins together, which is the folding.
    matrix = scipy.sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(scales) * n_grid, n_bins),
    )
    return matrix.tocsr()


@lru_cache(maxsize=8)
def cached_filter_bank(
    *, n_samples: int, sample_rate: int, n_scales: int, fmin: float, cycles: float, hop_length: int
) -> MorletFilterBank:
    """A :class:`MorletFilterBank` built once per process and setting (clips of one dataset share it)."""
    freqs = wavelet_frequencies(sample_rate=sample_rate, n_scales=n_scales, fmin=fmin, cycles=cycles)
    return MorletFilterBank(
        n_samples=n_samples, sample_rate=sample_rate, frequencies=freqs, cycles=cycles, hop_length=hop_length
    )


def reference_wavelet_power(
    *,
    y: np.ndarray,
    sample_rate: int,
    frequencies: np.ndarray,
    cycles: float,
    hop_length: int,
    precision: int = 16,
) -> np.ndarray:
    """The same frames as :class:`MorletFilterBank`, from ``pywt.cwt(..., method='conv')`` (slow reference).

    The full-rate coefficients are taken on the same grid (every ``hop_length / POINTS_PER_HOP`` samples)
    and averaged over the same frames.
    """
    import pywt

    scales = sample_rate / np.asarray(frequencies, dtype=np.float64)
    coef, _ = pywt.cwt(
        y.astype(np.float64),
        scales,
        pywt_wavelet_name(cycles=cycles),
        method="conv",
        precision=precision,
    )
    n_frames = n_wavelet_frames(n_samples=len(y), hop_length=hop_length)
    delta = hop_length // POINTS_PER_HOP
    grid = coef[:, ::delta][:, : (n_frames + 1) * POINTS_PER_HOP]
    return frames_from_grid(power=np.abs(grid) ** 2)
