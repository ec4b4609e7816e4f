"""Read a features folder (``build/features``): ``meta.json``, ``{train,test}.csv`` and the float16 shards
(:mod:`advaudio.features.shards`), the one place that does.

:func:`open_split` / :func:`open_features` give streaming readers (:mod:`advaudio.features.reader`) that
read and resize only the rows asked for, batch by batch: training and the attack stages use them, so
memory does not grow with the dataset.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advaudio.errors import DataError
from advaudio.features.reader import ShardSplit, SplitReader
from advaudio.features.shards import STORAGE_DTYPE, ShardedBlock
from advaudio.io import read_json_object

INDEX_COLUMNS = ("row", "clip_id", "source_id", "fold", "label", "category", "augmentation", "split")
META_KEYS = ("class_names", "n_classes", "input_shape", "storage")


@dataclass(frozen=True)
class FeatureReaders:
    """Train and test splits as streaming readers plus ``meta.json``."""

    train: SplitReader
    test: SplitReader
    meta: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])


def read_meta(directory: str | Path) -> dict[str, Any]:
    """Read and check ``meta.json`` of a features folder.

    Raises
    ------
    DataError
        Naming the file, when it is missing, not JSON or lacks a key.
    """
    meta_path = Path(directory) / "meta.json"
    meta = read_json_object(meta_path, missing_hint="run the spectrogram stage first")
    for key in META_KEYS:
        if key not in meta:
            raise DataError(f"{meta_path}: lacks the key {key!r} (written by an older version? rerun the "
                            "spectrogram stage)")
    storage = meta["storage"]
    if not isinstance(storage, dict) or storage.get("dtype") != STORAGE_DTYPE or not storage.get("blocks"):
        raise DataError(f"{meta_path}: 'storage' must describe {STORAGE_DTYPE} shards with at least one block")
    return meta


def open_split(directory: str | Path, name: str, *, meta: dict[str, Any]) -> SplitReader:
    """A streaming reader of split ``name`` (``train`` or ``test``), checked against ``meta``.

    Opens (memory-maps) every shard and checks its dtype and shape, and reads the index; reads no features.

    Raises
    ------
    DataError
        Naming the file, when one is missing or inconsistent (shard shape or dtype, row count, labels).
    """
    directory = Path(directory)
    storage = meta["storage"]
    split = storage.get("splits", {}).get(name)
    if split is None:
        raise DataError(f"{directory / 'meta.json'}: 'storage' lists no split {name!r}")
    n = int(split["n"])
    blocks = [(ShardedBlock(directory, split=name, block=b["name"], n_clips=n, shape=b["shape"],
                            clips_per_shard=int(storage["clips_per_shard"])), tuple(b["resize_to"]))
              for b in storage["blocks"]]
    rows_total = sum(h for _, (h, _) in blocks)
    expected = (1, rows_total, blocks[0][1][1])
    if tuple(meta["input_shape"]) != expected:
        raise DataError(f"{directory / 'meta.json'}: input_shape {meta['input_shape']} disagrees with the blocks' "
                        f"resize_to sizes {[b['resize_to'] for b in storage['blocks']]}")
    y, fold, original = _read_index(directory / f"{name}.csv", n=n, n_classes=int(meta["n_classes"]))
    return ShardSplit(blocks=blocks, y=torch.from_numpy(y), fold=fold, original=original,
                      input_shape=expected)


def open_features(directory: str | Path) -> FeatureReaders:
    """Streaming readers of both splits of ``directory`` (:func:`open_split`)."""
    meta = read_meta(directory)
    return FeatureReaders(train=open_split(directory, "train", meta=meta), test=open_split(directory, "test", meta=meta),
                          meta=meta)


def _read_index(csv_path: Path, *, n: int, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, folds and originality of a split's index rows, checked against ``n`` clips."""
    try:
        with csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError(f"{str(csv_path)!r} not found; run the spectrogram stage first") from None
    if len(rows) != n:
        raise DataError(f"{str(csv_path)!r} has {len(rows)} rows but meta.json lists {n} clips")
    if rows and any(c not in rows[0] for c in ("fold", "label", "augmentation")):
        raise DataError(f"{str(csv_path)!r} lacks columns; expected {list(INDEX_COLUMNS)}")
    try:
        y = np.array([int(r["label"]) for r in rows], dtype=np.int64)
        fold = np.array([int(r["fold"]) for r in rows], dtype=np.int64)
        original = np.array([float(r["augmentation"]) == 1.0 for r in rows], dtype=bool)
    except ValueError as exc:
        raise DataError(f"{str(csv_path)!r} has a non-numeric label/fold/augmentation: {exc}") from None
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"{str(csv_path)!r} has labels outside [0, {n_classes - 1}]")
    return y, fold, original
