"""Batch sizes from measured memory, and the precision contexts of the attack stages."""

import warnings
from types import SimpleNamespace

import psutil
import pytest
import torch

from advaudio.evaluation import memory
from advaudio.evaluation.memory import attack_batch_size, batch_size_for, free_bytes, per_sample_bytes
from advaudio.evaluation.precision import attack_autocast, exact_float32
from advaudio.models import build_model

CPU = torch.device("cpu")
SHAPE = [1, 4, 4]  # d = 16 features: 64 bytes of float32 per sample


class TanhSquared(torch.nn.Module):
    """Saves one tensor three times for its backward pass: tanh saves its output y, and y * y saves y twice."""

    def forward(self, x):
        y = x.tanh()
        return y * y


def test_batch_size_is_the_share_of_free_memory_over_the_per_sample_cost():
    assert batch_size_for(per_sample=100, free=10_000, fraction=0.5) == 50
    assert batch_size_for(per_sample=10**12, free=10_000) == 1  # never below one
    assert batch_size_for(per_sample=1, free=10**12, cap=64) == 64


def test_per_sample_memory_known_answer():
    """Per sample, the tensors autograd saves, plus the input, its gradient and the logits (64 bytes each here)."""
    tanh = torch.nn.Tanh()
    # tanh saves its output (64) + input 64 + gradient 64 + logits 64 = 256
    assert per_sample_bytes(model=tanh, input_shape=SHAPE, device=CPU) == 256
    # two tanh layers save two outputs: 2 x 64 + 3 x 64 = 320
    assert per_sample_bytes(model=torch.nn.Sequential(tanh, torch.nn.Tanh()), input_shape=SHAPE, device=CPU) == 320
    # one storage saved three times counts once: 64 + 3 x 64 = 256 (counting each save would give 384)
    assert per_sample_bytes(model=TanhSquared(), input_shape=SHAPE, device=CPU) == 256
    # forward only: input, output and one intermediate alive at once, 3 x the largest output (64) = 192
    assert per_sample_bytes(model=tanh, input_shape=SHAPE, device=CPU, backward=False) == 192


def test_per_sample_memory_is_measured_and_scales_with_the_input():
    model = build_model("resnet56", n_classes=4, input_shape=[1, 32, 32]).eval().requires_grad_(False)
    small = per_sample_bytes(model=model, input_shape=[1, 32, 32], device=CPU)
    large = per_sample_bytes(model=model, input_shape=[1, 64, 64], device=CPU)
    # ResNet-56 keeps ~55 feature maps of 16 x H x W floats for its backward pass: megabytes at 32 x 32
    assert 2 * 2**20 < small < 20 * 2**20
    assert 2.5 < large / small < 4.5  # four times the pixels: roughly four times the activations
    forward = per_sample_bytes(model=model, input_shape=[1, 32, 32], device=CPU, backward=False)
    assert forward < small


def test_an_explicit_batch_size_wins():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
    assert attack_batch_size(explicit=7, model=model, input_shape=[1, 4, 4], device=CPU) == 7
    assert attack_batch_size(explicit=0, model=model, input_shape=[1, 4, 4], device=CPU) == 256  # tiny model: cap


@pytest.mark.parametrize(("available", "batch"), [(64_000, 100), (6_400, 10), (100, 1), (10**9, 256)])
def test_cpu_batches_shrink_with_the_available_ram(monkeypatch, available, batch):
    """A machine short of memory gets a smaller batch: 40 % of the RAM available (not the total) over the 256
    bytes one tanh sample costs, within [1, 256]: 64000 -> 25600 / 256 = 100; 6400 -> 10; 100 -> 1; 1 GB -> cap."""
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=available, total=10**12))
    assert free_bytes(CPU) == available
    assert attack_batch_size(explicit=0, model=torch.nn.Tanh(), input_shape=SHAPE, device=CPU) == batch


def test_cuda_batches_are_sized_from_that_devices_free_memory(monkeypatch):
    """On CUDA the free memory is cudaMemGetInfo's free bytes of the attacked device, not its total and not the
    host's RAM. Simulated: 8000 of 80000 bytes free on cuda:1, a terabyte of host RAM, 32 bytes per sample."""
    asked = []

    def mem_get_info(device=None):
        asked.append(device)
        return 8_000, 80_000

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=10**12, total=10**12))
    monkeypatch.setattr(memory, "per_sample_bytes", lambda **_: 32)  # the real probe needs the device
    gpu = torch.device("cuda", 1)
    assert free_bytes(gpu) == 8_000 and asked == [gpu]
    assert attack_batch_size(explicit=0, model=torch.nn.Tanh(), input_shape=SHAPE, device=gpu) == 100  # 3200 / 32
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (64, 80_000))  # nearly full: one at a time
    assert attack_batch_size(explicit=0, model=torch.nn.Tanh(), input_shape=SHAPE, device=gpu) == 1


def test_attack_autocast_is_bf16_on_cuda_and_nothing_elsewhere():
    with warnings.catch_warnings():  # on a machine without CUDA torch warns that it disables the context
        warnings.simplefilter("ignore")
        cuda = attack_autocast(torch.device("cuda"), enabled=True)
        off = attack_autocast(torch.device("cuda"), enabled=False)
    assert isinstance(cuda, torch.autocast) and (cuda.device, cuda.fast_dtype) == ("cuda", torch.bfloat16)
    assert not isinstance(off, torch.autocast)  # attack.amp: false
    a = torch.ones(4, 4)
    with attack_autocast(CPU, enabled=True):  # the CPU attacks in float32 even with attack.amp on
        assert (a @ a).dtype == torch.float32


def test_exact_float32_turns_off_autocast_and_tf32_and_restores_them():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    a = torch.ones(4, 4)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert (a @ a).dtype == torch.bfloat16  # the autocast is on out here
            with exact_float32():
                assert (a @ a).dtype == torch.float32
                assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
            assert (a @ a).dtype == torch.bfloat16
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
