"""The on-disk layout of stored features: float16 shards of a fixed number of clips, one file per block.

``<features>/<split>/<block>-<index:05d>.npy`` holds clips ``[index * clips_per_shard, ...)`` of that split
and block as float16 ``(n, rows, frames)`` in [0, 1] at the block's native resolution; every shard but the
last holds ``clips_per_shard`` clips. Each shard is written atomically (:func:`advaudio.io.write_npy`), and
``meta.json``'s ``storage`` entry (:func:`storage_meta`) describes the layout. Shards are memory-mapped
when read, so a reader touches only the rows it asks for.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from advaudio.errors import DataError
from advaudio.io import npy_nbytes, write_npy
from advaudio.loading import open_npy

STORAGE_DTYPE = "float16"
CLIPS_PER_SHARD = 256  # at the study's sizes about 115 MB per spectrogram shard


def shard_path(directory: str | Path, *, split: str, block: str, index: int) -> Path:
    """Path of shard ``index`` of ``block`` in ``split``."""
    return Path(directory) / split / f"{block}-{index:05d}.npy"


def n_shards(*, n_clips: int, clips_per_shard: int) -> int:
    """Number of shards holding ``n_clips``."""
    return math.ceil(n_clips / clips_per_shard)


def shard_bytes(*, n_clips: int, shapes: dict[str, tuple[int, int]], clips_per_shard: int,
                skip: set[int] = frozenset()) -> int:
    """Bytes on disk of every block's file of the shards of a split of ``n_clips``, but the shards ``skip``."""
    return sum(npy_nbytes(shape=(min(clips_per_shard, n_clips - index * clips_per_shard), *shape), dtype=STORAGE_DTYPE)
               for index in range(n_shards(n_clips=n_clips, clips_per_shard=clips_per_shard)) if index not in skip
               for shape in shapes.values())


def storage_meta(*, blocks: dict[str, tuple[int, int]], targets: dict[str, tuple[int, int]],
                 splits: dict[str, dict[str, Any]], clips_per_shard: int = CLIPS_PER_SHARD) -> dict[str, Any]:
    """The ``storage`` entry of ``meta.json``.

    Parameters
    ----------
    blocks : dict
        Block name -> native (rows, frames), top to bottom in the model input.
    targets : dict
        Block name -> (rows, columns) it is resized to when read.
    splits : dict
        Split name -> ``{"n": clips, "sha256": digest}`` (:meth:`SplitWriter.close`).
    """
    return {
        "dtype": STORAGE_DTYPE,
        "clips_per_shard": clips_per_shard,
        "blocks": [{"name": name, "shape": list(shape), "resize_to": list(targets[name])}
                   for name, shape in blocks.items()],
        "splits": {name: {**info, "shards": n_shards(n_clips=info["n"], clips_per_shard=clips_per_shard)}
                   for name, info in splits.items()},
    }


class SplitWriter:
    """Collects the scaled blocks of one split clip by clip and writes each full shard atomically.

    Parameters
    ----------
    directory : str or Path
        The features folder; the split's folder inside it is emptied first, so no shard of an earlier
        run survives beside the new ones.
    split : str
        ``train`` or ``test``.
    shapes : dict
        Block name -> native (rows, frames); every added clip must match.
    clips_per_shard : int
        Clips per shard file.
    """

    def __init__(self, directory: str | Path, *, split: str, shapes: dict[str, tuple[int, int]],
                 clips_per_shard: int = CLIPS_PER_SHARD) -> None:
        self.directory, self.split, self.shapes = Path(directory), split, dict(shapes)
        self.clips_per_shard = clips_per_shard
        shutil.rmtree(self.directory / split, ignore_errors=True)
        (self.directory / split).mkdir(parents=True)
        self._pending: dict[str, list[np.ndarray]] = {name: [] for name in self.shapes}
        self._written = 0
        self._hash = hashlib.sha256()

    def add(self, blocks: dict[str, np.ndarray]) -> None:
        """Append one clip: block name -> float16 (rows, frames) in [0, 1]."""
        for name, shape in self.shapes.items():
            block = blocks[name]
            if block.shape != shape or block.dtype != np.dtype(STORAGE_DTYPE):
                raise ValueError(f"{name} block {block.dtype} {block.shape}; expected {STORAGE_DTYPE} {shape}")
            self._pending[name].append(block)
        if len(self._pending[next(iter(self.shapes))]) == self.clips_per_shard:
            self._flush()

    def close(self) -> dict[str, Any]:
        """Write the last (partial) shard; return ``{"n": clips written, "sha256": digest of all shards}``."""
        self._flush()
        return {"n": self._written, "sha256": self._hash.hexdigest()}

    def _flush(self) -> None:
        n = len(self._pending[next(iter(self.shapes))])
        if n == 0:
            return
        index = self._written // self.clips_per_shard
        for name in self.shapes:
            array = np.stack(self._pending[name])
            self._hash.update(array.tobytes())
            write_npy(shard_path(self.directory, split=self.split, block=name, index=index), array)
            self._pending[name] = []
        self._written += n


class ShardedBlock:
    """One block of one split, memory-mapped shard by shard; :meth:`take` gathers rows.

    Raises
    ------
    DataError
        Naming the shard, when one is missing or its dtype or shape disagrees with ``meta.json``.
    """

    def __init__(self, directory: str | Path, *, split: str, block: str, n_clips: int, shape: Sequence[int],
                 clips_per_shard: int) -> None:
        self.n_clips, self.shape, self.clips_per_shard = n_clips, tuple(int(s) for s in shape), clips_per_shard
        self.shards: list[np.ndarray] = []
        for index in range(n_shards(n_clips=n_clips, clips_per_shard=clips_per_shard)):
            path = shard_path(directory, split=split, block=block, index=index)
            if not path.exists():
                raise DataError(f"{str(path)!r} not found; run the spectrogram stage first")
            array = open_npy(path, kind=f"a {STORAGE_DTYPE} feature shard", hint="rerun the spectrogram stage")
            n = min(clips_per_shard, n_clips - index * clips_per_shard)
            if array.dtype != np.dtype(STORAGE_DTYPE) or array.shape != (n, *self.shape):
                raise DataError(f"{str(path)!r} holds {array.dtype} {array.shape}; expected {STORAGE_DTYPE} "
                                f"{(n, *self.shape)} (meta.json)")
            self.shards.append(array)
        self.path_pattern = str(Path(directory) / split / f"{block}-*.npy")  # names the shards in errors

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Float16 ``(len(rows), *shape)`` of the given rows, in the given order (reads only those rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_clips):
            raise IndexError(f"rows outside [0, {self.n_clips}) of {self.path_pattern}")
        out = np.empty((len(rows), *self.shape), dtype=np.float16)
        shard_of, offset = np.divmod(rows, self.clips_per_shard)
        for s in np.unique(shard_of):
            where = np.flatnonzero(shard_of == s)
            out[where] = self.shards[s][offset[where]]
        return out
