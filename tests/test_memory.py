"""Batch sizes from measured memory, and the precision contexts of the attack stages."""

import torch

from advaudio.evaluation.memory import attack_batch_size, batch_size_for, per_sample_bytes
from advaudio.evaluation.precision import attack_autocast, exact_float32
from advaudio.models import build_model

CPU = torch.device("cpu")


def test_batch_size_is_the_share_of_free_memory_over_the_per_sample_cost():
    assert batch_size_for(per_sample=100, free=10_000, fraction=0.5) == 50
    assert batch_size_for(per_sample=10**12, free=10_000) == 1  # never below one
    assert batch_size_for(per_sample=1, free=10**12, cap=64) == 64


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


def test_precision_contexts_on_the_cpu():
    with attack_autocast(CPU, enabled=True):
        assert not torch.is_autocast_enabled("cpu")  # bf16 autocast is for CUDA only
    before = torch.backends.cudnn.allow_tf32
    with exact_float32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.allow_tf32 == before
