"""Audio round trip of a spectrogram adversarial (issue 19, first slice: the STFT representation).

An attack perturbs the model's input: the clip's STFT power in dB, scaled to [0, 1] with the training split's
constants and resized to the input size. Whether that perturbation is a *sound* is answered by mapping it back
to a waveform and analysing the waveform again with the same feature code:

1. The input perturbation ``delta`` (``H x W``) goes back to the native resolution (``F x T`` STFT bins and
   frames) as the smallest native perturbation whose resize is ``delta`` (the least-squares fit where the resize
   stretches an axis): ``R^+ delta`` (:func:`resize_pseudo_inverse`, CGLS with the resize ``R`` and its adjoint
   ``R^T``, :func:`resize_adjoint`). The adjoint alone is not enough: the resize averages about ``k`` native
   values into each input value, so ``R R^T delta`` is about ``delta / k`` and the adjoint would shrink the
   attack ``k`` times (at the default sizes ~60x) before it is heard. Then out of the [0, 1] scaling into dB:
   ``Delta_dB = (hi - lo) * R^+ delta``.
2. The clean clip's complex STFT gets the gain ``10 ** (Delta_dB / 20)`` per bin, keeping the clean phase, and
   ``librosa.istft`` makes the waveform (:func:`stft_round_trip`). Only the perturbation leaves the dB domain,
   so bins the dB floor (``top_db``) clipped keep their true magnitude, and a zero perturbation gives the clean
   clip back up to the STFT's own reconstruction error.

Griffin-Lim (a phase estimated from the magnitude alone) and the wavelet representations are not covered yet:
the complex-Morlet bank has no cheap exact inverse here.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

from advaudio.features.resize import resize_batch


def resize_adjoint(delta: np.ndarray, *, native_shape: tuple[int, int]) -> np.ndarray:
    """``R^T delta``: the adjoint of :func:`~advaudio.features.resize.resize_batch` from ``native_shape`` to
    ``delta``'s shape, applied to ``delta``.

    The resize is linear, so its adjoint is the gradient of ``<R(z), delta>`` with respect to ``z`` (computed by
    autograd, exactly the transpose of what the features went through): ``<R(z), delta> == <z, R^T delta>`` for
    every ``z``.

    Parameters
    ----------
    delta : np.ndarray
        ``(H, W)`` perturbation of a model input.
    native_shape : tuple of int
        ``(F, T)`` of the block before it was resized.

    Returns
    -------
    np.ndarray
        ``(F, T)`` float64.
    """
    delta = np.asarray(delta, dtype=np.float64)
    if delta.ndim != 2:
        raise ValueError(f"resize_adjoint expects a 2D perturbation, got shape {delta.shape}")
    z = torch.zeros((1, *native_shape), dtype=torch.float64, requires_grad=True)
    out = resize_batch(z, height=delta.shape[0], width=delta.shape[1])[0, 0]
    (out * torch.from_numpy(delta)).sum().backward()
    return z.grad[0].numpy()


def resize_pseudo_inverse(delta: np.ndarray, *, native_shape: tuple[int, int], tol: float = 1e-10,
                          max_iter: int = 500) -> np.ndarray:
    """``R^+ delta``: the smallest native ``(F, T)`` array whose resize comes closest to ``delta`` (equals it
    when the resize only shrinks, as at the default sizes; the least-squares fit where it stretches an axis, as
    the study's 768 x 1568 inputs stretch time).

    CGLS (conjugate gradients on ``R^T R z = R^T delta``, started at zero, so the minimum-norm least-squares
    solution) with the resize ``R`` and its adjoint :func:`resize_adjoint`.

    Parameters
    ----------
    delta : np.ndarray
        ``(H, W)``.
    native_shape : tuple of int
        ``(F, T)``.
    tol : float
        Stop once ``||R^T (R z - delta)|| <= tol * ||R^T delta||``.
    max_iter : int
        Iterations at most.
    """
    delta = np.asarray(delta, dtype=np.float64)
    height, width = delta.shape

    def forward(z: np.ndarray) -> np.ndarray:
        return resize_batch(torch.from_numpy(z)[None], height=height, width=width)[0, 0].numpy()

    z = np.zeros(native_shape)
    r = delta.copy()  # delta - R z
    g = resize_adjoint(r, native_shape=native_shape)
    p, gamma = g.copy(), float(np.sum(g * g))
    stop = tol**2 * gamma
    for _ in range(max_iter):
        if gamma <= stop or gamma == 0.0:
            break
        q = forward(p)
        step = gamma / float(np.sum(q * q))
        z += step * p
        r -= step * q
        g = resize_adjoint(r, native_shape=native_shape)
        gamma, previous = float(np.sum(g * g)), gamma
        p = g + (gamma / previous) * p
    return z


def stft_round_trip(*, y: np.ndarray, delta: np.ndarray, lo: float, hi: float, n_fft: int,
                    hop_length: int) -> np.ndarray:
    """The waveform whose STFT is the clean clip's with the input perturbation ``delta`` applied in dB.

    Parameters
    ----------
    y : np.ndarray
        The clean clip ``(n,)``, as the spectrogram stage analysed it.
    delta : np.ndarray
        ``(H, W)``: adversarial input minus clean input of the model (scaled [0, 1] units).
    lo, hi : float
        The spectrogram block's scaling constants (``meta.json`` ``scaling``): dB = lo + (hi - lo) * value.
    n_fft, hop_length : int
        The STFT settings of the features (``spectrogram`` params).

    Returns
    -------
    np.ndarray
        ``(n,)`` float64.
    """
    y = np.asarray(y, dtype=np.float64)
    spectrum = librosa.stft(y, n_fft=n_fft, hop_length=hop_length)
    delta_db = (hi - lo) * resize_pseudo_inverse(delta, native_shape=spectrum.shape)
    return librosa.istft(spectrum * 10.0 ** (delta_db / 20.0), hop_length=hop_length, n_fft=n_fft, length=len(y))


def snr_db(*, clean: np.ndarray, adversarial: np.ndarray) -> float:
    """``10 log10(||clean||^2 / ||adversarial - clean||^2)`` in dB; inf when they are equal."""
    clean = np.asarray(clean, dtype=np.float64)
    noise = float(np.sum((np.asarray(adversarial, dtype=np.float64) - clean) ** 2))
    signal = float(np.sum(clean**2))
    if noise == 0.0:
        return float("inf")
    return float(10.0 * np.log10(signal / noise)) if signal > 0 else float("-inf")
