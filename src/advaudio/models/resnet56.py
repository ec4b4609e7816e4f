"""ResNet-56 for small inputs after He et al. 2016, "Deep Residual Learning for Image Recognition",
Sec. 4.2 (https://arxiv.org/abs/1512.03385): a 3x3 stem with 16 channels, three stages of 9 basic blocks
(16, 32, 64 channels; stride 2 at the start of stages 2 and 3), global average pooling and one linear
layer; 6 * 9 + 2 = 56 weighted layers.

Shortcuts are **option A** (the paper's choice for CIFAR): identity, and where the shape changes, a
stride-2 subsample padded with zero channels, so shortcuts add no parameters (0.85 M for 10 classes).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from advaudio.errors import ConfigError
from advaudio.models import MODELS
from advaudio.models.adapters import AdaptedNet, InputAdapter

STAGE_CHANNELS = (16, 32, 64)
BLOCKS_PER_STAGE = 9


class _PadShortcut(nn.Module):
    """Option-A shortcut: take every ``stride``-th pixel and zero-pad the channels to ``out_ch``."""

    def __init__(self, *, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection, ReLU after the sum."""

    def __init__(self, *, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if stride != 1 or in_ch != out_ch:
            self.shortcut: nn.Module = _PadShortcut(stride=stride, extra_channels=out_ch - in_ch)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR-style ResNet with ``6 * blocks_per_stage + 2`` layers and one input channel."""

    def __init__(self, *, n_classes: int, blocks_per_stage: int = BLOCKS_PER_STAGE) -> None:
        super().__init__()
        c0 = STAGE_CHANNELS[0]
        self.conv1 = nn.Conv2d(1, c0, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        layers: list[nn.Module] = []
        in_ch = c0
        for stage, out_ch in enumerate(STAGE_CHANNELS):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_ch=in_ch, out_ch=out_ch, stride=stride))
                in_ch = out_ch
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(in_ch, n_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) -> (B, n_classes)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


@MODELS.register("resnet56")
def resnet56(*, n_classes: int, input_shape: Sequence[int], pretrained: bool = False) -> nn.Module:
    """ResNet-56 (CIFAR-style, option-A shortcuts); inputs in [0, 1] are mapped to [-1, 1] inside.

    Raises
    ------
    ConfigError
        If ``pretrained`` is set: no ImageNet weights exist for this network.
    """
    if pretrained:
        raise ConfigError("train.pretrained = true is not available for model 'resnet56' (no ImageNet weights)")
    del input_shape  # fully convolutional with global pooling: any size >= 8x8 works as is
    return AdaptedNet(adapter=InputAdapter(mean=0.5, std=0.5), body=CifarResNet(n_classes=n_classes))
