"""Persisted resume state (``build/train_resume/``): an interrupted training continues at its last
finished epoch instead of starting over, but only when the params fingerprint matches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from advaudio.io import atomic_path

STATE_FILE = "state.pt"


def fingerprint(payload: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON-able mapping (sorted keys): identifies the params and data a state belongs to."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA) and numpy global RNG states as tensors and plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeStore:
    """One resume file in ``directory`` tagged with ``fingerprint``.

    Parameters
    ----------
    directory : str or Path
        Folder of the state file (created on the first save).
    fingerprint : str
        From :func:`fingerprint`; a stored state with another fingerprint is ignored.
    """

    def __init__(self, directory: str | Path, *, fingerprint: str) -> None:
        self.path = Path(directory) / STATE_FILE
        self.fingerprint = fingerprint

    def load(self) -> dict[str, Any] | None:
        """The stored unfinished state when its fingerprint matches, else None (start over)."""
        if not self.path.is_file():
            return None
        blob = torch.load(self.path, map_location="cpu", weights_only=True)
        if blob.get("fingerprint") != self.fingerprint or blob.get("finished", False):
            return None
        return blob["state"]

    def save(self, state: Mapping[str, Any], *, finished: bool = False) -> None:
        """Write the state atomically (a finished state is kept for DVC but never resumed)."""
        with atomic_path(self.path) as tmp:
            torch.save({"fingerprint": self.fingerprint, "finished": finished, "state": dict(state)}, tmp)
