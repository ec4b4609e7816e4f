"""Read and check the augment stage's output (the ``clips/`` shards, ``index.csv``, ``info.json``).

Every reader of ``build/audio`` goes through :func:`read_audio_inputs`; clips are read a few rows at a time
(:meth:`AudioInputs.rows`, :meth:`AudioInputs.chunks`), never the whole array.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from advaudio.data.clip_shards import FOLDER, STORAGE_DTYPE, ClipShards, n_shards
from advaudio.errors import DataError
from advaudio.io import read_json_object

INDEX_COLUMNS = ("row", "clip_id", "source_id", "fold", "label", "category", "augmentation", "split")
INFO_KEYS = ("dataset", "sample_rate", "clip_samples", "class_names", "dwt_sample_rate", "storage")
STORAGE_KEYS = ("dtype", "folder", "rows", "rows_per_shard", "shards")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class AudioInputs:
    """The augment stage's artifacts: clips (read from their shards on demand), index rows (as read), info."""

    clips: ClipShards  # (N, L), float16 on disk, read as float32
    index: list[dict[str, str]]
    columns: tuple[str, ...]
    info: dict

    @property
    def clip_samples(self) -> int:
        """L: samples per clip."""
        return self.clips.clip_samples

    def rows(self, indices: Sequence[int]) -> np.ndarray:
        """Float32 ``(len(indices), L)`` clips of the given rows of ``index``, in order (see
        :meth:`~advaudio.data.clip_shards.ClipShards.rows` for what it raises)."""
        return self.clips.rows(indices)

    def chunks(self, indices: Sequence[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The given rows shard by shard: ``(positions in indices, float32 clips)``."""
        return self.clips.chunks(indices)

    def split_rows(self, split: str) -> np.ndarray:
        """Positions in ``index`` (and rows of ``clips``) of one split, in file order."""
        return np.array([i for i, r in enumerate(self.index) if r["split"] == split], dtype=np.int64)


def read_audio_inputs(*, audio_dir: str | Path) -> AudioInputs:
    """Open ``audio_dir``'s clips, index and info and check that they agree.

    Every shard's header and size are checked against ``index.csv`` (row count) and ``info.json``
    (``clip_samples``, ``storage``); no sample is read until asked for.

    Raises
    ------
    DataError
        Naming the file: missing, unreadable, missing columns/keys, or inconsistent with the others (a shard
        missing, truncated, of another dtype or row count; a shard count or row count that disagrees).
    """
    audio_dir = Path(audio_dir)
    info_path, index_path = audio_dir / "info.json", audio_dir / "index.csv"
    for path in (info_path, index_path):
        if not path.is_file():
            raise DataError(f"{path}: missing; run the augment stage first")
    info = read_json_object(info_path, missing_hint="run the augment stage first")
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise DataError(f"{info_path}: missing keys {missing}; expected {list(INFO_KEYS)} (rerun the augment stage)")
    with index_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = tuple(reader.fieldnames or ())
        index = list(reader)
    missing = [c for c in INDEX_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"{index_path}: missing columns {missing}; expected {list(INDEX_COLUMNS)}")
    for i, row in enumerate(index):
        if row["split"] not in SPLITS:
            raise DataError(f"{index_path}: line {i + 2}: split {row['split']!r} is not one of {list(SPLITS)}")
        if row["row"] != str(i):
            raise DataError(f"{index_path}: line {i + 2}: row {row['row']!r}, expected {i} (rows in order)")
    clip_samples, per_shard = _check_storage(info, info_path=info_path, index_path=index_path, n_rows=len(index))
    clips = ClipShards(audio_dir, n_rows=len(index), clip_samples=clip_samples, rows_per_shard=per_shard)
    return AudioInputs(clips=clips, index=index, columns=columns, info=info)


def _check_storage(info: dict, *, info_path: Path, index_path: Path, n_rows: int) -> tuple[int, int]:
    """``(clip_samples, rows_per_shard)`` from ``info.json``, checked against the index's ``n_rows``."""
    storage = info["storage"]
    if not isinstance(storage, dict) or any(k not in storage for k in STORAGE_KEYS):
        raise DataError(f"{info_path}: 'storage' is {storage!r}; expected an object with keys {list(STORAGE_KEYS)}")
    numbers = (info["clip_samples"], storage["rows"], storage["rows_per_shard"], storage["shards"])
    whole = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in numbers)
    if not whole or info["clip_samples"] < 1 or storage["rows_per_shard"] < 1:
        raise DataError(f"{info_path}: clip_samples {numbers[0]}, storage rows {numbers[1]}, rows_per_shard "
                        f"{numbers[2]}, shards {numbers[3]}; expected whole numbers (clip_samples and "
                        "rows_per_shard >= 1)")
    if storage["dtype"] != STORAGE_DTYPE or storage["folder"] != FOLDER:
        raise DataError(f"{info_path}: storage dtype {storage['dtype']!r} in folder {storage['folder']!r}; this "
                        f"version reads {STORAGE_DTYPE!r} shards in {FOLDER!r} (rerun the augment stage)")
    if storage["rows"] != n_rows:
        raise DataError(f"{info_path}: storage holds {storage['rows']} rows but {index_path} lists {n_rows}; "
                        "the two are from different runs (rerun the augment stage)")
    expected = n_shards(n_rows=n_rows, rows_per_shard=storage["rows_per_shard"])
    if storage["shards"] != expected:
        raise DataError(f"{info_path}: {storage['shards']} shards, expected {expected} for {n_rows} rows of "
                        f"{storage['rows_per_shard']} per shard (rerun the augment stage)")
    return info["clip_samples"], storage["rows_per_shard"]


def write_index(*, path: str | Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    """Write index rows (same columns as ``index.csv``) atomically."""
    import io

    from advaudio.io import write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())
