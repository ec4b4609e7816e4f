"""The five torchvision victims (``weights=None``), adapted to one input channel, any class count and
any input size >= 8x8.

Adaptations, each explicit:

- **Stem**: the first convolution takes 1 channel (same kernel, stride and padding; re-initialised as
  torchvision initialises it).
- **Minimum size**: AlexNet (63x63), GoogLeNet (15x15) and VGG-16 (32x32) cannot run on smaller inputs; the
  minimum is read from torchvision's weight metadata and a shorter input axis is bilinearly upsampled to it
  inside the network (:class:`~advaudio.models.adapters.InputAdapter`), so attacks still act at the
  representation's own size.
- **Classifier pooling** (AlexNet, VGG-16): torchvision pools the last feature map to 6x6 / 7x7 before the
  first linear layer; on a smaller map that only replicates values, and a linear layer on replicated values
  equals a smaller linear layer on the originals. The pool is therefore set to ``min(6 or 7, feature
  size)`` per axis, which keeps the function class and drops ~100 M redundant weights at 32x32.
- **GoogLeNet**: ``aux_logits=False`` (the auxiliary heads were a deep-supervision aid for 224x224 ImageNet
  training; at spectrogram sizes their 4x4 pooling sees 1-2 pixels), ``transform_input=False`` and
  ``init_weights=True`` (torchvision's truncated-normal init).
- **Initialisation** (AlexNet, VGG-16, from scratch): neither has batch norm, and torchvision's init
  (VGG: linear layers N(0, 0.01); AlexNet: PyTorch's default, std 1/sqrt(3 fan_in)) shrinks the signal
  layer by layer: fresh logits have std 0.001-0.02 at 32x32 and VGG-16 training stalls at chance. Every
  conv and linear layer is re-initialised with He et al. 2015 (fan-in, ReLU gain), which keeps the
  activations' scale (logit std ~0.75); see :func:`he_init`.
- **Normalisation** inside the network: ``(x - 0.5) / 0.5`` from scratch; with ImageNet weights the
  grey-level mean/std (RGB values averaged) the weights expect.

``pretrained=True`` loads torchvision's ImageNet weights only from the local torch hub cache
(``torch.hub.get_dir()/checkpoints``); first-conv weights are averaged over RGB, the last layer is new.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm
from torchvision.models.googlenet import BasicConv2d

from advaudio.errors import ConfigError, DataError
from advaudio.loading import load_torch
from advaudio.models import MODELS
from advaudio.models.adapters import AdaptedNet, InputAdapter


def _min_size(weights: tvm.WeightsEnum) -> tuple[int, int]:
    h, w = weights.DEFAULT.meta["min_size"]
    return int(h), int(w)


def _adapted_size(input_shape: Sequence[int], min_size: tuple[int, int]) -> tuple[int, int]:
    return max(int(input_shape[1]), min_size[0]), max(int(input_shape[2]), min_size[1])


def _feature_size(features: nn.Module, size: tuple[int, int]) -> tuple[int, int]:
    with torch.no_grad():
        out = features(torch.zeros(1, 1, *size))
    return int(out.shape[-2]), int(out.shape[-1])


def _one_channel_conv(conv: nn.Conv2d) -> nn.Conv2d:
    return nn.Conv2d(
        1,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
    )


def he_init(net: nn.Module) -> None:
    """Re-initialise every conv and linear layer of ``net`` with He (Kaiming) normal, fan-in, ReLU gain,
    and zero biases, so a deep network without batch norm starts with activations of constant scale."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _shrink_head_pool(net: nn.Module, *, first_linear: str, input_hw: tuple[int, int]) -> None:
    """Pool to ``min(P, feature size)`` and resize the first classifier layer to match (see module doc)."""
    p_h, p_w = net.avgpool.output_size
    f_h, f_w = _feature_size(net.features, input_hw)
    pool = (min(p_h, f_h), min(p_w, f_w))
    net.avgpool = nn.AdaptiveAvgPool2d(pool)
    idx = int(first_linear)
    old: nn.Linear = net.classifier[idx]
    channels = old.in_features // (p_h * p_w)
    new = nn.Linear(channels * pool[0] * pool[1], old.out_features)
    net.classifier[idx] = new
    net._advaudio_head = {"orig_pool": (p_h, p_w), "pool": pool, "channels": channels, "key": first_linear}


def _fold_head_weight(weight: torch.Tensor, *, orig_pool: tuple, pool: tuple, channels: int) -> torch.Tensor:
    """Exact fold of an ImageNet first-linear weight onto the smaller pool: W' = W @ M, where M is the
    original adaptive pool applied to each basis image of the smaller grid."""
    n = pool[0] * pool[1]
    basis = torch.eye(n).reshape(n, 1, *pool)
    m = F.adaptive_avg_pool2d(basis, orig_pool).reshape(n, -1).T  # (P*P, n)
    w = weight.reshape(weight.shape[0], channels, -1) @ m
    return w.reshape(weight.shape[0], -1)


def _load_imagenet(
    net: nn.Module, *, name: str, weights: tvm.WeightsEnum, first_conv: str, last_layer: str
) -> None:
    """Load cached ImageNet weights into ``net`` (one input channel, new last layer)."""
    url = weights.DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not path.is_file():
        raise ConfigError(
            f"train.pretrained = true but the ImageNet weights for {name!r} are not on disk at {str(path)!r}; "
            f"nothing is downloaded at run time: fetch {url} into that folder once, or set train.pretrained: false"
        )
    state = load_torch(path, kind=f"the ImageNet weights of {name!r}")
    if not isinstance(state, dict) or first_conv + ".weight" not in state:
        raise DataError(f"{str(path)!r} is not the ImageNet weights of {name!r}: no {first_conv + '.weight'!r}")
    state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2.", last_layer + "."))}
    state[first_conv + ".weight"] = state[first_conv + ".weight"].mean(dim=1, keepdim=True)
    head = getattr(net, "_advaudio_head", None)
    if head is not None:
        key = f"classifier.{head['key']}.weight"
        state[key] = _fold_head_weight(
            state[key], orig_pool=head["orig_pool"], pool=head["pool"], channels=head["channels"]
        )
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(last_layer + ".") for k in missing):
        raise ConfigError(
            f"ImageNet weights at {str(path)!r} do not fit {name!r}: missing {missing}, unexpected {unexpected}"
        )


def _wrap(net: nn.Module, *, pretrained: bool, weights: tvm.WeightsEnum, min_size: tuple[int, int]) -> nn.Module:
    if pretrained:
        mean = sum(weights.DEFAULT.transforms().mean) / 3
        std = sum(weights.DEFAULT.transforms().std) / 3
    else:
        mean, std = 0.5, 0.5
    return AdaptedNet(adapter=InputAdapter(mean=mean, std=std, min_size=min_size), body=net)


def _register_resnet(name: str, factory: Callable[..., nn.Module], weights: tvm.WeightsEnum) -> None:
    @MODELS.register(name)
    def build(*, n_classes: int, input_shape: Sequence[int], pretrained: bool = False) -> nn.Module:
        net = factory(weights=None, num_classes=n_classes)
        net.conv1 = _one_channel_conv(net.conv1)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        if pretrained:
            _load_imagenet(net, name=name, weights=weights, first_conv="conv1", last_layer="fc")
        return _wrap(net, pretrained=pretrained, weights=weights, min_size=_min_size(weights))

    build.__doc__ = f"torchvision {name} with a 1-channel stem (module doc lists the adaptations)."


_register_resnet("resnet18", tvm.resnet18, tvm.ResNet18_Weights)
_register_resnet("resnet34", tvm.resnet34, tvm.ResNet34_Weights)


@MODELS.register("alexnet")
def alexnet(*, n_classes: int, input_shape: Sequence[int], pretrained: bool = False) -> nn.Module:
    """torchvision AlexNet: 1-channel stem, inputs upsampled to >= 63x63, head pool shrunk, He init."""
    weights = tvm.AlexNet_Weights
    min_size = _min_size(weights)
    net = tvm.alexnet(weights=None, num_classes=n_classes)
    net.features[0] = _one_channel_conv(net.features[0])
    _shrink_head_pool(net, first_linear="1", input_hw=_adapted_size(input_shape, min_size))
    he_init(net)
    if pretrained:
        _load_imagenet(net, name="alexnet", weights=weights, first_conv="features.0", last_layer="classifier.6")
    return _wrap(net, pretrained=pretrained, weights=weights, min_size=min_size)


@MODELS.register("vgg16")
def vgg16(*, n_classes: int, input_shape: Sequence[int], pretrained: bool = False) -> nn.Module:
    """torchvision VGG-16 (no batch norm, as in the study): 1-channel stem, >= 32x32, head pool shrunk,
    He init."""
    weights = tvm.VGG16_Weights
    min_size = _min_size(weights)
    net = tvm.vgg16(weights=None, num_classes=n_classes, init_weights=True)
    net.features[0] = _one_channel_conv(net.features[0])
    _shrink_head_pool(net, first_linear="0", input_hw=_adapted_size(input_shape, min_size))
    he_init(net)
    if pretrained:
        _load_imagenet(net, name="vgg16", weights=weights, first_conv="features.0", last_layer="classifier.6")
    return _wrap(net, pretrained=pretrained, weights=weights, min_size=min_size)


@MODELS.register("googlenet")
def googlenet(*, n_classes: int, input_shape: Sequence[int], pretrained: bool = False) -> nn.Module:
    """torchvision GoogLeNet: 1-channel stem, inputs upsampled to >= 15x15, no auxiliary heads."""
    del input_shape  # global pooling: no size-dependent layer
    weights = tvm.GoogLeNet_Weights
    net = tvm.googlenet(
        weights=None, num_classes=n_classes, aux_logits=False, transform_input=False, init_weights=True
    )
    net.conv1 = BasicConv2d(1, 64, kernel_size=7, stride=2, padding=3)
    nn.init.trunc_normal_(net.conv1.conv.weight, mean=0.0, std=0.01, a=-2, b=2)  # torchvision's init
    if pretrained:
        _load_imagenet(net, name="googlenet", weights=weights, first_conv="conv1.conv", last_layer="fc")
    # The ported Inception weights expect inputs scaled to [-1, 1] (what transform_input emulates).
    return AdaptedNet(adapter=InputAdapter(mean=0.5, std=0.5, min_size=_min_size(weights)), body=net)
