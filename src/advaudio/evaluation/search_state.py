"""An attack's budget search state as a resume file: ``build/.resume/attack@<mode>/<attack>.npz``.

After every rung the attack stage saves the :class:`~advaudio.evaluation.budget.SearchState` of the running
search (:mod:`advaudio.resume` keeps the folder and discards it when any input of the stage changed). A rerun
after a crash or ``kill -9`` takes the finished attacks as they are and continues an unfinished one at its
next rung; because each rung's randomness depends only on the seed and the rung, the results equal an
uninterrupted run's (wall time aside).

A state file that does not load (truncated, corrupt, not an .npz archive, holding pickled objects), does not
fit the search (another attack's name, another victim count or input shape, another ladder) or holds values no
search writes (NaN or inf in an adversarial; a NaN norm, or a norm that is not finite exactly where the victim
is fooled, as unfooled victims keep inf) is refused by :func:`read_search_state`; the folder then deletes it
with a one-line message on stderr and that attack starts from its first rung.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import IO, Any

import numpy as np

from advaudio.errors import DataError
from advaudio.evaluation.budget import BudgetResult, SearchState
from advaudio.loading import one_line, read_npz

_ARRAYS = ("adv", "l2", "success")  # BudgetResult's array fields
KIND = "an advaudio attack resume state"
# BudgetResult's scalar fields (and the state's "finished") and the types a saved state must give them
_SCALARS = {"name": str, "level": int, "n_levels": int, "gradient_calls": int, "forward_calls": int, "queries": int,
            "seconds": (int, float), "black_box": bool, "raw_nonfinite": int, "raw_out_of_range": int,
            "fr_per_level": list, "success_checks": int, "finished": bool}


def state_file(name: str) -> str:
    """The file name of attack ``name``'s state in the stage's resume folder."""
    return f"{name}.npz"


def write_search_state(fh: IO[bytes], state: SearchState) -> None:
    """Write ``state`` to the open file ``fh`` (uncompressed: at the study's sizes compression costs more than
    disk)."""
    result = state.result
    scalars = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in _ARRAYS}
    scalars["finished"] = state.finished
    arrays = {k: getattr(result, k) for k in _ARRAYS}
    if state.pool_top1 is not None:
        arrays["pool_top1"] = state.pool_top1
    np.savez(fh, state=np.array(json.dumps(scalars)), **arrays)


def read_search_state(path: Path, *, name: str, shape: tuple[int, ...], n_levels: int) -> SearchState:
    """The :class:`SearchState` saved at ``path``, checked against the search it must continue.

    Parameters
    ----------
    path : Path
        The file.
    name : str
        The attack.
    shape : tuple
        ``(N, 1, H, W)`` of the victims' inputs.
    n_levels : int
        Rungs of the attack's ladder.

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
    problem = (_scalars_problem(scalars, name=name, n_levels=n_levels) or _arrays_problem(arrays, shape=tuple(shape))
               or _values_problem(scalars, arrays))
    if problem:
        raise DataError(f"{str(path)!r} is not {KIND} of this search: {problem}")
    finished = scalars.pop("finished")
    pool_top1 = arrays.pop("pool_top1", None)
    return SearchState(result=BudgetResult(**arrays, **scalars), finished=finished, pool_top1=pool_top1)


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
    unknown = sorted(set(arrays) - {*_ARRAYS, "pool_top1"})
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
