"""Checkpoints that carry their config, so later stages rebuild the model from the file alone.

Format (docs/ARCHITECTURE.md): ``torch.save({"state_dict": ..., "config": {...}})``; config holds plain
types only: ``model, model_kwargs, n_classes, class_names, input_shape, representation, scaling, params``.
"""

from __future__ import annotations

import io
import json
import reprlib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from advaudio.errors import ConfigError, DataError
from advaudio.io import write_bytes
from advaudio.loading import first_nonfinite, load_torch, one_line
from advaudio.models import build_model

REQUIRED_KEYS = ("model", "model_kwargs", "n_classes", "class_names", "input_shape", "representation", "scaling", "params")
KIND = "an advaudio checkpoint"


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
    write_bytes(path, buffer.getvalue())


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
        Naming the file: missing, or not an advaudio checkpoint (unreadable, corrupt or truncated, a zip member
        failing its CRC check included; holding Python objects other than tensors and plain types, which are
        refused unloaded; lacking the state dict or the config; a config that does not describe a model;
        weights that do not fit it; a weight holding NaN or inf, named).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"checkpoint {str(path)!r} not found; run the train stage first")
    blob = load_torch(path, kind=KIND)
    if not isinstance(blob, dict) or "state_dict" not in blob or "config" not in blob:
        raise DataError(f"{str(path)!r} is not {KIND}: it lacks 'state_dict'/'config'")
    config, state = blob["config"], blob["state_dict"]
    problem = _config_problem(config) or _state_problem(state)
    if problem:
        raise DataError(f"{str(path)!r} is not {KIND}: {problem}")
    try:
        model = build_model(config["model"], n_classes=config["n_classes"], input_shape=config["input_shape"],
                            **config["model_kwargs"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise DataError(f"{str(path)!r} is not {KIND}: its config does not build a model ({exc})") from None
    problem = _dtype_problem(model, state)
    if problem:
        raise DataError(f"{str(path)!r} is not {KIND}: {problem}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"{str(path)!r} is not {KIND}: its weights do not fit model {config['model']!r} "
                        f"({one_line(str(exc))})") from None
    model.eval()
    if not _finite_on_a_probe(model, input_shape=config["input_shape"]):
        raise DataError(f"{str(path)!r} is not {KIND}: its logits on a constant probe input are NaN or inf, though "
                        "every weight is finite (weights that overflow, or a negative BatchNorm variance)")
    return model.to(device), config


# Spectrogram sides are at most 4096 (config.SpectrogramConfig), plus the tonnetz rows.
MAX_INPUT_SIDE = 8192
_CONFIG_TYPES = {"model": str, "model_kwargs": dict, "n_classes": int, "class_names": list, "input_shape": list,
                 "representation": str, "scaling": dict, "params": dict}


def _config_problem(config: Any) -> str | None:
    """What is wrong with a checkpoint's config (None when it is what :func:`make_config` writes)."""
    if not isinstance(config, dict):
        return f"its config is a {type(config).__name__}, not a mapping"
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        return f"its config lacks {missing}"
    wrong = [k for k, kind in _CONFIG_TYPES.items() if not isinstance(config[k], kind) or isinstance(config[k], bool)]
    if wrong:
        return f"config entries {wrong} are not of the types make_config writes"
    if not all(isinstance(c, str) for c in config["class_names"]) or len(config["class_names"]) != config["n_classes"]:
        return f"class_names is not a list of n_classes = {config['n_classes']} names"
    shape = config["input_shape"]
    if len(shape) != 3 or not all(type(s) is int and 0 < s <= MAX_INPUT_SIDE for s in shape) or shape[0] != 1:
        return f"input_shape {reprlib.repr(shape)} is not [1, H, W] with H, W in 1..{MAX_INPUT_SIDE}"
    return None


def _state_problem(state: Any) -> str | None:
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        return "its state_dict is not a mapping of names to tensors"
    # NaN weights give NaN logits, whose argmax is class 0: the model would seem to work
    bad = first_nonfinite(state, where="state_dict")
    if bad is not None:
        return f"{bad} holds NaN or inf (a corrupt file or a diverged training)"
    return None


def _dtype_problem(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """A saved tensor of another dtype than the model's (``load_state_dict`` would cast it silently: an integer,
    boolean or complex weight is no weight this model was trained with)."""
    expected = model.state_dict()
    for name, tensor in state.items():
        if name in expected and tensor.dtype != expected[name].dtype:
            return f"state_dict[{name!r}] is {tensor.dtype}, expected {expected[name].dtype}"
    return None


def _finite_on_a_probe(model: nn.Module, *, input_shape: list[int]) -> bool:
    """Whether ``model`` (in eval mode, on the CPU) gives finite logits for a constant mid-range input: one forward
    pass, which catches what a look at the weights alone misses."""
    with torch.no_grad():
        return bool(torch.isfinite(model(torch.full((1, *input_shape), 0.5))).all())


def check_matches_features(config: Mapping[str, Any], *, meta: Mapping[str, Any], path: str | Path) -> None:
    """Check that the checkpoint ``path`` (its ``config``) was trained on features like those of ``meta``
    (``build/features/meta.json``): same classes, input shape, representation and scaling constants.

    Raises
    ------
    DataError
        Naming the checkpoint and each entry that differs; the model is stale (retrain it).
    """
    differ = [f"{key} {config.get(key)!r} vs {meta.get(key)!r}"
              for key in ("representation", "n_classes", "class_names", "input_shape", "scaling")
              if config.get(key) != meta.get(key)]
    if differ:
        raise DataError(f"{str(path)!r} was trained on other features than those of meta.json "
                        f"({one_line('; '.join(differ))}); rerun the train stage")
