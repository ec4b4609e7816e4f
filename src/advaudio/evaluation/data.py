"""Read the test split the attacks need: ``build/features/test.{npy,csv}`` and ``meta.json``."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advaudio.errors import DataError


@dataclass(frozen=True)
class TestSplit:
    """Test features ``x`` (N, 1, H, W) float32 in [0, 1], labels (N,) and class names."""

    x: np.ndarray
    labels: np.ndarray
    class_names: list[str]


def load_test_split(*, directory: str | Path) -> TestSplit:
    """Load and check the test split written by the spectrogram stage.

    Raises
    ------
    DataError
        Naming the file that is missing, malformed or inconsistent with the others.
    """
    directory = Path(directory)
    npy, table, meta_path = directory / "test.npy", directory / "test.csv", directory / "meta.json"
    for p in (npy, table, meta_path):
        if not p.is_file():
            raise DataError(f"{str(p)!r} not found; run the spectrogram stage first")
    try:
        meta = json.loads(meta_path.read_text())
        class_names = list(meta["class_names"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{str(meta_path)!r} lacks a valid 'class_names' list: {exc}") from None
    try:
        x = np.load(npy, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{str(npy)!r} is not a readable .npy array: {exc}") from None
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"{str(npy)!r} has shape {x.shape}; expected (N, 1, H, W)")
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "label" not in rows[0]:
        raise DataError(f"{str(table)!r} has no 'label' column")
    try:
        labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"{str(table)!r}: non-integer label: {exc}") from None
    if len(labels) != len(x):
        raise DataError(f"{str(table)!r} has {len(labels)} rows but {str(npy)!r} has {len(x)} samples")
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise DataError(f"{str(table)!r}: labels outside [0, {len(class_names)}) of {str(meta_path)!r}")
    x = np.array(x, dtype=np.float32)  # a writable copy (torch refuses read-only memory maps)
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise DataError(f"{str(npy)!r} must hold finite values in [0, 1]")
    return TestSplit(x=x, labels=labels, class_names=class_names)
