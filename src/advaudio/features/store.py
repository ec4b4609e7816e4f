"""Read a features folder (``build/features``): ``{train,test}.npy``, ``{train,test}.csv``, ``meta.json``.

The arrays are small, so each split is read once (``np.load(mmap_mode="r")``) into one tensor and batches
are indexed directly: no DataLoader, no worker processes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advaudio.errors import DataError
from advaudio.io import read_json_object

INDEX_COLUMNS = ("row", "clip_id", "source_id", "fold", "label", "category", "augmentation", "split")


@dataclass(frozen=True)
class Split:
    """One split: inputs ``x`` (N, 1, H, W) float32 in [0, 1], labels ``y`` (N,) int64, and per-row
    ``fold`` (N,) and ``original`` (N,) bool (augmentation scale 1.0)."""

    x: torch.Tensor
    y: torch.Tensor
    fold: np.ndarray
    original: np.ndarray


@dataclass(frozen=True)
class Features:
    """Train and test splits plus ``meta.json``."""

    train: Split
    test: Split
    meta: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])


def load_features(directory: str | Path) -> Features:
    """Load ``{train,test}.npy``, ``{train,test}.csv`` and ``meta.json`` from ``directory``.

    Raises
    ------
    DataError
        Naming the file, when one is missing or inconsistent (shape, range, row count, labels).
    """
    directory = Path(directory)
    meta = read_meta(directory)
    splits = {name: load_split(directory, name, meta=meta) for name in ("train", "test")}
    return Features(train=splits["train"], test=splits["test"], meta=meta)


def read_meta(directory: str | Path) -> dict[str, Any]:
    """Read and check ``meta.json`` of a features folder.

    Raises
    ------
    DataError
        Naming the file, when it is missing, not JSON or lacks a key.
    """
    meta_path = Path(directory) / "meta.json"
    meta = read_json_object(meta_path, missing_hint="run the spectrogram stage first")
    for key in ("class_names", "n_classes", "input_shape"):
        if key not in meta:
            raise DataError(f"{meta_path}: lacks the key {key!r}")
    return meta


def load_split(directory: str | Path, name: str, *, meta: dict[str, Any]) -> Split:
    """Load one split (``train`` or ``test``) of a features folder and check it against ``meta``.

    Raises
    ------
    DataError
        Naming the file, when one is missing or inconsistent (shape, range, row count, labels).
    """
    directory = Path(directory)
    npy, csv_path = directory / f"{name}.npy", directory / f"{name}.csv"
    try:
        arr = np.load(npy, mmap_mode="r")
    except FileNotFoundError:
        raise DataError(f"{str(npy)!r} not found; run the spectrogram stage first") from None
    expected = tuple(meta["input_shape"])
    if arr.ndim != 4 or tuple(arr.shape[1:]) != expected or arr.dtype != np.float32:
        raise DataError(
            f"{str(npy)!r} holds {arr.dtype} {arr.shape}; expected float32 (N, {', '.join(map(str, expected))})"
        )
    x = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True))  # one read into RAM
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise DataError(f"{str(npy)!r} has values outside [0, 1] or non-finite values")
    try:
        with csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError(f"{str(csv_path)!r} not found; run the spectrogram stage first") from None
    if len(rows) != len(x):
        raise DataError(f"{str(csv_path)!r} has {len(rows)} rows but {str(npy)!r} has {len(x)}")
    if rows and any(c not in rows[0] for c in ("fold", "label", "augmentation")):
        raise DataError(f"{str(csv_path)!r} lacks columns; expected {list(INDEX_COLUMNS)}")
    try:
        y = np.array([int(r["label"]) for r in rows], dtype=np.int64)
        fold = np.array([int(r["fold"]) for r in rows], dtype=np.int64)
        original = np.array([float(r["augmentation"]) == 1.0 for r in rows], dtype=bool)
    except ValueError as exc:
        raise DataError(f"{str(csv_path)!r} has a non-numeric label/fold/augmentation: {exc}") from None
    if len(y) and (y.min() < 0 or y.max() >= int(meta["n_classes"])):
        raise DataError(f"{str(csv_path)!r} has labels outside [0, {int(meta['n_classes']) - 1}]")
    return Split(x=x, y=torch.from_numpy(y), fold=fold, original=original)
