"""Per-item costs measured on this machine, at the selected profile's sizes, on a few synthetic items."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from advaudio.config import Params
from advaudio.data.augment import pitch_shift
from advaudio.data.synth import plan_clips, synth_clip
from advaudio.evaluation.memory import per_sample_bytes
from advaudio.features.representations import REPRESENTATIONS, n_rows, stored_bytes_per_clip
from advaudio.models import build_model
from advaudio.plan.facts import DatasetFacts
from advaudio.training.loop import make_optimizer

REPEATS = 2  # timed repetitions after one warm-up


@dataclass(frozen=True)
class ClipCosts:
    """Seconds per clip to synthesise it (synth), for one pitch shift and for one representation, and the bytes
    the spectrogram stage stores for it."""

    synth_seconds: float
    pitch_shift_seconds: float
    feature_seconds: float
    stored_bytes: int


@dataclass(frozen=True)
class ModelCosts:
    """Seconds per sample of one training step, one input gradient and one forward pass, and the memory one
    sample's backward pass needs, for one model at one input size and batch size."""

    train_seconds: float
    gradient_seconds: float
    forward_seconds: float
    backward_bytes: int
    weight_bytes: int
    batch_size: int


def _timed(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up: allocator, kernels, caches
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def clip_costs(*, params: Params, facts: DatasetFacts, representation: str, seed: int = 0) -> ClipCosts:
    """Time one pitch shift and one representation of a clip as long as ``facts``' on noise (the cost does not
    depend on the content) and count the bytes the spectrogram stage stores for it."""
    y = np.random.default_rng(seed).standard_normal(facts.clip_samples).astype(np.float32) * 0.1
    shift = _timed(lambda: pitch_shift(y=y, sample_rate=facts.sample_rate, scale=1.15), repeats=1)
    represent = REPRESENTATIONS.get(representation)

    def compute():
        for block in represent.blocks:
            represent.compute(block, y=y, sample_rate=facts.sample_rate, dwt_sample_rate=facts.dwt_sample_rate,
                              config=params.spectrogram)

    seconds = _timed(compute, repeats=1)
    stored = stored_bytes_per_clip(name=representation, config=params.spectrogram, n_samples=len(y),
                                   sample_rate=facts.sample_rate, dwt_sample_rate=facts.dwt_sample_rate)
    first = plan_clips(config=params.synth, seed=seed)[0]
    synth = _timed(lambda: synth_clip(clip=first, config=params.synth, seed=seed), repeats=1)
    return ClipCosts(synth_seconds=synth, pitch_shift_seconds=shift, feature_seconds=seconds,
                     stored_bytes=stored)


def model_costs(*, params: Params, model: str, representation: str, n_classes: int, device: torch.device,
                batch_size: int) -> ModelCosts:
    """Time a training step, an input-gradient pass and a forward pass of ``model`` on random inputs of the
    profile's input size, ``batch_size`` samples at a time, and measure its per-sample backward memory."""
    shape = (1, n_rows(name=representation, config=params.spectrogram), params.spectrogram.width)
    net = build_model(model, n_classes=n_classes, input_shape=list(shape)).to(device)
    cfg = params.train.for_model(model)
    x = torch.rand((batch_size, *shape), device=device)
    y = torch.randint(0, n_classes, (batch_size,), device=device)
    opt = make_optimizer(net, name=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def train_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        _sync(device)

    net.train()
    train = _timed(train_step)
    net.eval().requires_grad_(False)

    def gradient():
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(net(xg), y), xg)
        _sync(device)

    def forward():
        with torch.no_grad():
            net(x)
        _sync(device)

    grad, fwd = _timed(gradient), _timed(forward)
    backward = per_sample_bytes(model=net, input_shape=shape, device=device)
    weights = sum(p.numel() * p.element_size() for p in net.parameters())
    return ModelCosts(train_seconds=train / batch_size, gradient_seconds=grad / batch_size,
                      forward_seconds=fwd / batch_size, backward_bytes=backward, weight_bytes=weights,
                      batch_size=batch_size)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
