"""Read and check the files the ``tables`` stage consumes; every problem raises a DataError naming the file.

The formats are those of ``docs/ARCHITECTURE.md``: ``metrics/train.json``, ``metrics/fgsm_retrain.json``,
``metrics/attack_<mode>.json``, ``metrics/curves/attack_<mode>/<attack>.csv`` and the
``examples.npz`` written by the attack stages.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advaudio.errors import DataError
from advaudio.io import read_json_object
from advaudio.loading import read_npz

MODES: tuple[str, ...] = ("original", "original_bounded", "retrained_bounded", "retrained")  # attack_<mode>.json, in report order
# Object-valued keys of attack_<mode>.json that are not attacks; number-valued top-level keys
# (n_victims, victims_misclassified, ...) are counts, not attacks, either.
NON_ATTACK_KEYS: frozenset[str] = frozenset({"mean", "sanity", "reference"})


@dataclass(frozen=True)
class AttackMetrics:
    """One ``metrics/attack_<mode>.json``: per-attack dicts of the study's attacks, the sanity flags, the victim
    count, the L2 bound in use (``attack.bound`` at this input size, :mod:`advaudio.evaluation.bound`) and the
    reference attacks' dicts (``reference``; empty when none ran)."""

    path: Path
    attacks: dict[str, dict[str, float]]
    sanity: dict[str, float]
    n_victims: int
    bound: float
    reference: dict[str, dict[str, float]] = field(default_factory=dict)


def read_json(*, path: str | Path) -> dict[str, Any]:
    """Load a JSON object.

    Raises
    ------
    DataError
        If the file is missing, is not valid JSON or does not hold an object.
    """
    return read_json_object(path, missing_hint="is the stage that writes it in the pipeline?")


def require_number(obj: dict[str, Any], key: str, *, path: str | Path) -> float:
    """Return ``obj[key]`` as a finite float.

    Raises
    ------
    DataError
        Naming the file and the key when it is missing or not a finite number.
    """
    if key not in obj:
        raise DataError(f"{path}: missing key {key!r}; found {sorted(obj)}")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{path}: key {key!r} must be a finite number, got {value!r}")
    return float(value)


def read_attack_metrics(*, path: str | Path) -> AttackMetrics:
    """Load one ``metrics/attack_<mode>.json`` and check its shape.

    Every attack entry needs ``fooling_rate``, ``fr_at_bound``, ``level`` and ``n_levels``; ``mean_l2`` is
    absent when an attack had no success (metrics hold no NaN).

    Raises
    ------
    DataError
        If the file is missing or malformed, or lists no attack.
    """
    path = Path(path)
    raw = read_json(path=path)
    attacks = {k: v for k, v in raw.items() if k not in NON_ATTACK_KEYS and not isinstance(v, (int, float))}
    if not attacks:
        raise DataError(f"{path}: no attack entries; expected keys like 'bim_a' next to 'mean' and 'sanity'")
    for name, entry in attacks.items():
        if not isinstance(entry, dict):
            raise DataError(f"{path}: entry {name!r} must be an object of metrics, got {entry!r}")
        for key in ("fooling_rate", "fr_at_bound", "level", "n_levels"):
            require_number(entry, key, path=f"{path} [{name}]")
    sanity = raw.get("sanity", {})
    if not isinstance(sanity, dict):
        raise DataError(f"{path}: 'sanity' must be an object of 1/0 flags, got {sanity!r}")
    n_victims = int(require_number(raw, "n_victims", path=path))
    bound = require_number(raw, "bound", path=path)
    reference = raw.get("reference", {})
    if not isinstance(reference, dict) or not all(isinstance(v, dict) for v in reference.values()):
        raise DataError(f"{path}: 'reference' must be an object of per-attack metrics, got {reference!r}")
    for name, entry in reference.items():
        for key in ("fooling_rate", "fr_at_bound", "level", "n_levels"):
            require_number(entry, key, path=f"{path} [reference {name}]")
    return AttackMetrics(path=path, attacks=attacks, sanity=sanity, n_victims=n_victims, bound=bound,
                         reference=reference)


def read_attack_suite(*, metrics_dir: str | Path) -> dict[str, AttackMetrics]:
    """Load ``attack_<mode>.json`` for every mode of :data:`MODES` and check they cover the same attacks with
    the same bound.

    Raises
    ------
    DataError
        If a file is missing or malformed, or the attack sets differ (naming both files).
    """
    metrics_dir = Path(metrics_dir)
    suite = {mode: read_attack_metrics(path=metrics_dir / f"attack_{mode}.json") for mode in MODES}
    reference = suite["original"]
    for mode in MODES[1:]:
        if set(suite[mode].attacks) != set(reference.attacks) or set(suite[mode].reference) != set(reference.reference):
            raise DataError(
                f"{suite[mode].path}: attacks {sorted(suite[mode].attacks)} (reference "
                f"{sorted(suite[mode].reference)}) differ from {reference.path}: {sorted(reference.attacks)} "
                f"(reference {sorted(reference.reference)}); rerun the attack stages"
            )
        if not math.isclose(suite[mode].bound, reference.bound, rel_tol=1e-9):
            raise DataError(
                f"{suite[mode].path}: bound {suite[mode].bound} differs from {reference.path}: {reference.bound}; "
                "rerun the attack stages"
            )
    return suite


def parse_curve(text: str, *, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse a robustness curve CSV's text (header ``epsilon,fooling_rate``); ``source`` names it in errors.

    Returns
    -------
    epsilon, fooling_rate : ndarray
        1-D float arrays of equal length.

    Raises
    ------
    DataError
        If it lacks the two columns or a row, or holds a non-number.
    """
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"epsilon", "fooling_rate"} <= set(rows[0]):
        raise DataError(f"{source}: expected a CSV with header 'epsilon,fooling_rate' and at least one row")
    try:
        eps = np.array([float(r["epsilon"]) for r in rows])
        fr = np.array([float(r["fooling_rate"]) for r in rows])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: non-numeric value ({exc})") from None
    return eps, fr


def read_curve(*, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load a robustness curve CSV file (:func:`parse_curve`).

    Raises
    ------
    DataError
        If the file is missing, lacks the two columns or holds a non-number.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: robustness curve not found (expected columns epsilon,fooling_rate)") from None
    return parse_curve(text, source=str(path))


def read_examples(*, path: str | Path, attacks: list[str]) -> dict[str, np.ndarray]:
    """Load ``examples.npz`` (``x``, ``<attack>_adv``, ``<attack>_l2``, ``labels``, ``targets``, ``class_names``).

    Raises
    ------
    DataError
        If the file is missing or an expected array is absent or has the wrong shape.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: adversarial examples file not found")
    arrays = read_npz(path, kind="an advaudio examples file", hint="rerun the attack stage that writes it")
    need = ["x", "labels", "targets", "class_names"]
    need += [f"{a}_adv" for a in attacks] + [f"{a}_l2" for a in attacks]
    missing = [k for k in need if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; found {sorted(arrays)}")
    x = arrays["x"]
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"{path}: 'x' must have shape (k, 1, H, W), got {x.shape}")
    for a in attacks:
        if arrays[f"{a}_adv"].shape != x.shape:
            raise DataError(f"{path}: '{a}_adv' has shape {arrays[f'{a}_adv'].shape}, expected {x.shape}")
        if arrays[f"{a}_l2"].shape != (x.shape[0],):
            raise DataError(f"{path}: '{a}_l2' has shape {arrays[f'{a}_l2'].shape}, expected ({x.shape[0]},)")
    return arrays
