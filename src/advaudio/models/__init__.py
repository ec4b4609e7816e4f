"""Victim networks: the ``MODELS`` registry and :func:`build_model`.

Every registered builder has the signature ``builder(*, n_classes, input_shape, pretrained) -> nn.Module``
and returns a network that maps float32 ``(B, 1, H, W)`` inputs in [0, 1] to logits ``(B, n_classes)``;
any normalisation or resizing happens inside the network.
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from advaudio.errors import ConfigError
from advaudio.registry import Registry

#: Smallest input height and width every registered model accepts.
MIN_INPUT_SIZE = 8

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def build_model(
    name: str, *, n_classes: int, input_shape: Sequence[int], pretrained: bool = False
) -> nn.Module:
    """Build a registered victim network.

    Parameters
    ----------
    name : str
        A name in ``MODELS``.
    n_classes : int
        Number of output logits (>= 2).
    input_shape : sequence of int
        ``(1, H, W)`` with ``H, W >= 8``.
    pretrained : bool
        Load torchvision ImageNet weights from the local torch hub cache (never downloaded).

    Raises
    ------
    ConfigError
        Unknown name (lists the allowed set), bad class count or input shape, or pretrained weights that
        are not on disk or not available for the model.
    """
    builder = MODELS.get(name)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ConfigError(f"n_classes = {n_classes!r}; expected an integer >= 2")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[0] != 1 or min(shape[1:]) < MIN_INPUT_SIZE:
        raise ConfigError(
            f"input_shape = {list(input_shape)!r}; expected [1, H, W] with H, W >= {MIN_INPUT_SIZE}"
        )
    return builder(n_classes=n_classes, input_shape=shape, pretrained=pretrained)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Importing the modules fills the registry.
from advaudio.models import resnet56 as _resnet56  # noqa: E402,F401
from advaudio.models import torchvision_models as _torchvision_models  # noqa: E402,F401
