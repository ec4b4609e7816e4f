"""Checkpoints that carry their config, so later stages rebuild the model from the file alone.

Format (docs/ARCHITECTURE.md): ``torch.save({"state_dict": ..., "config": {...}})``; config holds plain
types only: ``model, model_kwargs, n_classes, class_names, input_shape, representation, scaling, params``.
"""

from __future__ import annotations

import io

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from advaudio.errors import DataError
from advaudio.io import atomic_path
from advaudio.models import build_model

REQUIRED_KEYS = ("model", "model_kwargs", "n_classes", "class_names", "input_shape", "representation", "scaling", "params")


def make_config(
    *,
    model: str,
    n_classes: int,
    class_names: list[str],
    input_shape: list[int],
    representation: str,
    scaling: Mapping[str, Any],
    params: Mapping[str, Any],
    model_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a checkpoint config and check that it holds plain (JSON-able) types only.

    Raises
    ------
    ValueError
        If a value is not a plain type (it could not be loaded with ``weights_only=True``).
    """
    config = {
        "model": str(model),
        "model_kwargs": dict(model_kwargs or {}),
        "n_classes": int(n_classes),
        "class_names": [str(c) for c in class_names],
        "input_shape": [int(s) for s in input_shape],
        "representation": str(representation),
        "scaling": dict(scaling),
        "params": dict(params),
    }
    # Round trip through JSON: rejects tensors, numpy scalars and other non-plain objects early.
    try:
        return json.loads(json.dumps(config, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint config must hold plain types only (no tensors, numpy, NaN): {exc}") from None


def save_checkpoint(path: str | Path, *, model: nn.Module, config: Mapping[str, Any]) -> None:
    """Write ``{"state_dict", "config"}`` atomically (weights moved to CPU)."""
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ValueError(f"checkpoint config lacks {missing}")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # torch.save names the zip's root folder after the file it writes to; saving to the random temporary
    # name would make every save of the same weights differ byte-wise, and DVC would then rerun every
    # stage after an unchanged retraining. A buffer gets the fixed root name "archive".
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "config": dict(config)}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path``.

    Returns
    -------
    model : nn.Module
        On ``device``, in eval mode.
    config : dict
        The checkpoint config (plain types).

    Raises
    ------
    DataError
        If the file is missing, unreadable or not an advaudio checkpoint (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {str(path)!r} not found; run the train stage first")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"checkpoint {str(path)!r} is unreadable: {exc}") from None
    if not isinstance(blob, dict) or "state_dict" not in blob or "config" not in blob:
        raise DataError(f"checkpoint {str(path)!r} lacks 'state_dict'/'config'; not an advaudio checkpoint")
    config = blob["config"]
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise DataError(f"checkpoint {str(path)!r}: config lacks {missing}")
    model = build_model(
        config["model"], n_classes=config["n_classes"], input_shape=config["input_shape"], **config["model_kwargs"]
    )
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise DataError(f"checkpoint {str(path)!r}: weights do not fit model {config['model']!r}: {exc}") from None
    return model.to(device).eval(), config
