"""Persisted resume state (``build/train_resume/``): an interrupted training continues at its last
finished epoch instead of starting over, but only when the params fingerprint matches.

A state file that does not load (truncated, corrupt, not a torch file, holding Python objects other than
tensors and plain types), lacks what a state holds, holds a tensor with NaN or inf, or fails the caller's own
check of its contents (:meth:`ResumeStore.load`) is deleted with a one-line message on stderr, and the training
starts over: a bad file never blocks it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from advaudio.errors import DataError
from advaudio.io import atomic_path, discard
from advaudio.loading import first_nonfinite, load_torch

STATE_FILE = "state.pt"
KIND = "an advaudio training resume state"


_SOURCES = ("features", "models", "training")  # packages whose code shapes a saved state (and its meaning)


def fingerprint(payload: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON-able mapping (sorted keys): identifies the params and data a state belongs to."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def code_digest() -> str:
    """SHA-256 of the sources of :data:`_SOURCES`: a state saved by other code (another architecture's
    weights, another state layout) is not resumed."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(p for name in _SOURCES for p in (package / name).rglob("*.py")):
        digest.update(f"{path.relative_to(package)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


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

    def load(
        self, *, required: Sequence[str] = (), check: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> dict[str, Any] | None:
        """The stored unfinished state when its fingerprint matches, else None (start over).

        A file that does not load, whose state lacks a key of ``required``, holds a floating-point tensor with
        NaN or inf (weights or optimizer moments: the training would go on from a broken model) or fails
        ``check`` is discarded (deleted, with a one-line message on stderr saying why) and None returned.

        Parameters
        ----------
        required : sequence of str
            Keys the state must hold.
        check : callable, optional
            ``check(state)``: what is wrong with a state that holds ``required`` (values of the wrong kind,
            tensors that do not fit the model), or None; called only on states of this fingerprint.
        """
        if not self.path.exists():
            return None
        try:
            blob = load_torch(self.path, kind=KIND)
        except DataError as exc:
            discard(self.path, reason=str(exc), then="training starts from its first epoch")
            return None
        problem = _problem(blob)
        if not problem and (blob["fingerprint"] != self.fingerprint or blob["finished"]):
            return None  # another training's state, or a finished one: kept for DVC, overwritten on the next save
        problem = problem or _content_problem(blob["state"], required=required, check=check)
        if problem:
            discard(self.path, reason=f"{str(self.path)!r} is not {KIND}: {problem}",
                    then="training starts from its first epoch")
            return None
        return blob["state"]

    def save(self, state: Mapping[str, Any], *, finished: bool = False) -> None:
        """Write the state atomically (a finished state is kept for DVC but never resumed).

        Raises
        ------
        DiskFullError
            When the state does not fit on the disk (nothing is left half-written).
        """
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:  # a file object: ENOSPC reaches us as such
            torch.save({"fingerprint": self.fingerprint, "finished": finished, "state": dict(state)}, fh)


def _problem(blob: Any) -> str | None:
    """What is wrong with a loaded state file (None when it holds what :meth:`ResumeStore.save` writes)."""
    if not isinstance(blob, dict) or not {"fingerprint", "finished", "state"} <= set(blob):
        return "it lacks 'fingerprint'/'finished'/'state'"
    if not isinstance(blob["fingerprint"], str) or not isinstance(blob["finished"], bool):
        return "its fingerprint or finished flag is of the wrong type"
    if not isinstance(blob["state"], dict):
        return "its state is not a mapping"
    return None


def _content_problem(state: dict[str, Any], *, required: Sequence[str],
                     check: Callable[[dict[str, Any]], str | None] | None) -> str | None:
    """What is wrong with the contents of a state of this fingerprint (None: nothing)."""
    missing = [k for k in required if k not in state]
    if missing:
        return f"its state lacks {missing}"
    bad = first_nonfinite(state, where="state")
    if bad is not None:
        return f"{bad} holds NaN or inf"
    return check(state) if check is not None else None
