"""Crash-safe attack stages: each attack's search state is saved after every rung and picked up on rerun.

An attack stage runs six budget searches that can take hours at the study's sizes. After every rung the state
of the running search (:class:`~advaudio.evaluation.budget.BudgetResult` with ``finished`` False, or True once
the search has ended) is written atomically to ``build/attacks/.resume/<mode>/<attack>.npz``. A rerun of the
stage after a crash or ``kill -9`` loads the finished attacks as they are and continues an unfinished one at its
next rung; because each rung's randomness depends only on the seed and the rung, the results equal an
uninterrupted run's (wall time aside).

The folder is outside every DVC output, so DVC neither deletes it before the rerun nor ever takes it for a
stage output. It is keyed by a fingerprint of everything the searches depend on (the mode, the checkpoint, the
test features, the victims, the attack parameters, the seed and the code of the attacks and the evaluation);
a state saved under another fingerprint is discarded. The stage deletes the folder once its outputs are written.

A state file that does not load (truncated, corrupt, not an .npz archive, holding pickled objects), does not
fit the search (another attack's name, another victim count or input shape, another ladder) or holds values no
search writes (NaN or inf in an adversarial; a NaN norm, or a norm that is not finite exactly where the victim
is fooled, as unfooled victims keep inf) is deleted with a one-line message on stderr, and that attack starts
from its first rung: a bad file never blocks the stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from advaudio.errors import DataError
from advaudio.evaluation.budget import BudgetResult
from advaudio.io import atomic_path, discard, write_text
from advaudio.loading import one_line, read_npz

RESUME_DIR = Path("build/attacks/.resume")
_ARRAYS = ("adv", "l2", "success", "pool_top1")  # BudgetResult's array fields; saved unless None
_SOURCES = ("attacks", "evaluation", "models")  # packages whose code decides the searches' results
KIND = "an advaudio attack resume state"
# BudgetResult's scalar fields and the types a saved state must give them
_SCALARS = {"name": str, "level": int, "n_levels": int, "gradient_calls": int, "forward_calls": int, "queries": int,
            "seconds": (int, float), "black_box": bool, "raw_nonfinite": int, "raw_out_of_range": int,
            "fr_per_level": list, "finished": bool}


def fingerprint(*, files: Iterable[Path], settings: dict[str, Any], package_dir: Path) -> str:
    """SHA-256 over the contents of ``files``, ``settings`` (as sorted JSON) and the source files of the
    packages in :data:`_SOURCES` under ``package_dir`` (``src/advaudio``)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    sources = sorted(p for pkg in _SOURCES for p in (package_dir / pkg).rglob("*.py"))
    for path in [*sorted(Path(f) for f in files), *sources]:
        digest.update(str(path.name).encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class ResumeStore:
    """The saved search states of one attack stage, valid for one fingerprint.

    Parameters
    ----------
    directory : Path
        ``build/attacks/.resume/<mode>``.
    key : str
        The :func:`fingerprint` of the stage's inputs; states saved under another key are deleted.
    """

    def __init__(self, directory: str | Path, *, key: str) -> None:
        self.directory = Path(directory)
        stamp = self.directory / "fingerprint.txt"
        if self.directory.exists() and (not stamp.is_file() or stamp.read_bytes().strip() != key.encode()):
            shutil.rmtree(self.directory)
        if not stamp.is_file():
            write_text(stamp, key + "\n")

    def load(self, name: str, *, shape: tuple[int, ...], n_levels: int) -> BudgetResult | None:
        """The saved state of attack ``name``, or ``None``.

        Parameters
        ----------
        name : str
            The attack.
        shape : tuple
            ``(N, 1, H, W)`` of the victims' inputs.
        n_levels : int
            Rungs of the attack's ladder.

        A file that does not load or does not fit these is discarded (deleted, with a one-line message on
        stderr saying why) and ``None`` returned: the attack starts from its first rung.
        """
        path = self.directory / f"{name}.npz"
        if not path.exists():
            return None
        try:
            return _read_state(path, name=name, shape=tuple(shape), n_levels=n_levels)
        except DataError as exc:
            discard(path, reason=str(exc), then=f"{name} starts from its first rung")
            return None

    def save(self, state: BudgetResult) -> None:
        """Write ``state`` atomically (uncompressed: at the study's sizes compression costs more than disk)."""
        scalars = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name not in _ARRAYS}
        saved = {k: getattr(state, k) for k in _ARRAYS if getattr(state, k) is not None}
        with atomic_path(self.directory / f"{state.name}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, state=np.array(json.dumps(scalars)), **saved)

    def clear(self) -> None:
        """Delete every saved state (the stage's outputs are written)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _read_state(path: Path, *, name: str, shape: tuple[int, ...], n_levels: int) -> BudgetResult:
    """The :class:`BudgetResult` saved at ``path``, checked against the search it must continue.

    Raises
    ------
    DataError
        Naming the file, when it does not load or does not fit.
    """
    arrays = read_npz(path, kind=KIND, hint="written by the attack stage")
    try:
        scalars = json.loads(str(arrays.pop("state")))
    except (KeyError, ValueError):
        raise DataError(f"{str(path)!r} is not {KIND}: no JSON 'state' entry") from None
    problem = (_scalars_problem(scalars, name=name, n_levels=n_levels) or _arrays_problem(arrays, shape=shape)
               or _values_problem(scalars, arrays))
    if problem:
        raise DataError(f"{str(path)!r} is not {KIND} of this search: {problem}")
    return BudgetResult(**{k: arrays[k] for k in _ARRAYS if k in arrays}, **scalars)


def _scalars_problem(scalars: Any, *, name: str, n_levels: int) -> str | None:
    if not isinstance(scalars, dict) or set(scalars) != set(_SCALARS):
        return f"its state holds {sorted(scalars) if isinstance(scalars, dict) else type(scalars).__name__}, " \
               f"expected {sorted(_SCALARS)}"
    wrong = [k for k, kind in _SCALARS.items()
             if not isinstance(scalars[k], kind) or (kind is int and isinstance(scalars[k], bool))]
    if wrong:
        return f"entries {wrong} are of the wrong type"
    if scalars["name"] != name or scalars["n_levels"] != n_levels or not 0 <= scalars["level"] <= n_levels:
        return (f"{scalars['name']!r} at rung {scalars['level']}/{scalars['n_levels']}, expected {name!r} with "
                f"{n_levels} rungs")
    return None


def _arrays_problem(arrays: dict[str, np.ndarray], *, shape: tuple[int, ...]) -> str | None:
    expected = {"adv": (np.float32, "float32", shape), "l2": (np.floating, "float", shape[:1]),
                "success": (np.bool_, "bool", shape[:1])}
    for key, (dtype, dtype_name, want) in expected.items():
        if key not in arrays:
            return f"no {key!r} array"
        if not np.issubdtype(arrays[key].dtype, dtype) or arrays[key].shape != want:
            return f"{key!r} is {arrays[key].dtype} {arrays[key].shape}, expected {dtype_name} {want}"
    if "pool_top1" in arrays and (not np.issubdtype(arrays["pool_top1"].dtype, np.integer)
                                  or arrays["pool_top1"].ndim != 1):
        return f"'pool_top1' is {arrays['pool_top1'].dtype} {arrays['pool_top1'].shape}, expected 1-D integer classes"
    unknown = sorted(set(arrays) - set(_ARRAYS))
    return f"unknown arrays {unknown}" if unknown else None


def _values_problem(scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> str | None:
    """Values :func:`~advaudio.evaluation.budget.budget_search` never saves (None: none). Its adversarials are
    the inputs or verified adversarials, finite both; a victim's norm is finite (>= 0) once it is fooled and
    inf until then; fooling rates are fractions (NaN only without victims); the time is finite."""
    adv, l2, success = arrays["adv"], arrays["l2"], arrays["success"]
    finite = np.isfinite(adv).all(axis=tuple(range(1, adv.ndim)))
    if not finite.all():
        return f"'adv' of victim {int(np.flatnonzero(~finite)[0])} holds NaN or inf"
    wrong = np.isnan(l2) | (np.isfinite(l2) != success) | (l2 < 0)
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        return f"'l2' of victim {i} is {l2[i]} with success {bool(success[i])} (finite >= 0 if fooled, else inf)"
    rates = scalars["fr_per_level"]
    if not all(isinstance(r, (int, float)) and not isinstance(r, bool)
               and (0 <= r <= 1 or (math.isnan(r) and not len(success))) for r in rates):
        return f"'fr_per_level' {one_line(repr(rates), limit=80)} is not a list of fractions"
    if not (math.isfinite(scalars["seconds"]) and scalars["seconds"] >= 0):
        return f"'seconds' is {scalars['seconds']}"
    return None
