"""Read and check the augment stage's output (``clips.npy``, ``index.csv``, ``info.json``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advaudio.errors import DataError
from advaudio.io import read_json_object
from advaudio.loading import open_npy

INDEX_COLUMNS = ("row", "clip_id", "source_id", "fold", "label", "category", "augmentation", "split")
INFO_KEYS = ("dataset", "sample_rate", "clip_samples", "class_names", "dwt_sample_rate")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class AudioInputs:
    """The augment stage's artifacts: clips (memory-mapped), index rows (as read), info."""

    clips: np.ndarray  # (N, L) float32, memory-mapped
    index: list[dict[str, str]]
    columns: tuple[str, ...]
    info: dict

    def split_rows(self, split: str) -> np.ndarray:
        """Positions in ``index`` (and rows of ``clips``) of one split, in file order."""
        return np.array([i for i, r in enumerate(self.index) if r["split"] == split], dtype=np.int64)


def read_audio_inputs(*, audio_dir: str | Path) -> AudioInputs:
    """Open ``audio_dir``'s clips, index and info and check that they agree.

    Raises
    ------
    DataError
        Naming the file: missing, unreadable, missing columns/keys, or inconsistent with the others.
    """
    audio_dir = Path(audio_dir)
    info_path, index_path, clips_path = (audio_dir / n for n in ("info.json", "index.csv", "clips.npy"))
    for path in (info_path, index_path, clips_path):
        if not path.is_file():
            raise DataError(f"{path}: missing; run the augment stage first")
    info = read_json_object(info_path, missing_hint="run the augment stage first")
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise DataError(f"{info_path}: missing keys {missing}; expected {list(INFO_KEYS)}")
    with index_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = tuple(reader.fieldnames or ())
        index = list(reader)
    missing = [c for c in INDEX_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"{index_path}: missing columns {missing}; expected {list(INDEX_COLUMNS)}")
    clips = open_npy(clips_path, kind="a float32 clips array", hint="rerun the augment stage")
    if clips.ndim != 2 or clips.shape[0] != len(index) or clips.shape[1] != int(info["clip_samples"]):
        raise DataError(
            f"{clips_path}: shape {clips.shape} does not match {index_path} ({len(index)} rows) and "
            f"{info_path} (clip_samples {info['clip_samples']}); expected (rows, clip_samples)"
        )
    for i, row in enumerate(index):
        if row["split"] not in SPLITS:
            raise DataError(f"{index_path}: line {i + 2}: split {row['split']!r} is not one of {list(SPLITS)}")
        if row["row"] != str(i):
            raise DataError(f"{index_path}: line {i + 2}: row {row['row']!r}, expected {i} (rows in order)")
    return AudioInputs(clips=clips, index=index, columns=columns, info=info)


def write_index(*, path: str | Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    """Write index rows (same columns as ``index.csv``) atomically."""
    import io

    from advaudio.io import write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())
