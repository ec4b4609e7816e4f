"""The on-disk layout of the augment stage's clips: float16 shards of a fixed number of rows.

``<audio>/clips/clips-<index:05d>.npy`` holds rows ``[index * rows_per_shard, ...)`` of the clips (the rows of
``index.csv``) as float16 ``(n, clip_samples)``; every shard but the last holds ``rows_per_shard`` rows, sized
so that a shard is about :data:`SHARD_BYTES`. ``info.json``'s ``storage`` entry (:func:`storage_info`) describes
the layout. Shards are written one at a time with ordinary writes, each atomically (:class:`ClipWriter`), and
read back with ordinary reads of the rows asked for (:class:`ClipShards`): neither side maps a file or holds
more than one shard, so memory stays flat in the number of clips.

Why float16, not int16 PCM (same size): its error is relative, about 2^-12 of each sample, so every clip keeps
a signal-to-quantisation-noise ratio near 73 dB whatever its level (measured on the synth clips: 72.8 dB at
worst), above the 60 dB range (``spectrogram.top_db``) the features keep. int16's error is absolute: quiet
clips fell to 43 dB (53 dB at the 5th percentile), a clip 40 dB quieter to 28 dB, and pitch-shifted copies
overshoot full scale (1.05 seen), which int16 would have to clip or rescale. Every float16 value reads back
as float32 exactly.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from advaudio.errors import DataError
from advaudio.io import npy_nbytes, write_npy

STORAGE_DTYPE = "float16"
SHARD_BYTES = 32 * 2**20  # about 190 UrbanSound8K clips (4 s at 22.05 kHz) per shard
FOLDER = "clips"
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def rows_per_shard(*, clip_samples: int, shard_bytes: int = SHARD_BYTES) -> int:
    """Rows of ``clip_samples`` float16 samples that fit in ``shard_bytes`` (at least 1)."""
    return max(1, shard_bytes // (clip_samples * np.dtype(STORAGE_DTYPE).itemsize))


def n_shards(*, n_rows: int, rows_per_shard: int) -> int:
    """Number of shards holding ``n_rows``."""
    return math.ceil(n_rows / rows_per_shard)


def shard_path(audio_dir: str | Path, *, index: int) -> Path:
    """Path of shard ``index`` in the audio folder ``audio_dir``."""
    return Path(audio_dir) / FOLDER / f"{FOLDER}-{index:05d}.npy"


def shards_nbytes(*, n_rows: int, clip_samples: int, rows_per_shard: int) -> int:
    """Bytes on disk of the shards of ``n_rows`` clips, headers included."""
    return sum(npy_nbytes(shape=(min(rows_per_shard, n_rows - i * rows_per_shard), clip_samples),
                          dtype=STORAGE_DTYPE)
               for i in range(n_shards(n_rows=n_rows, rows_per_shard=rows_per_shard)))


def storage_info(*, n_rows: int, rows_per_shard: int) -> dict[str, Any]:
    """The ``storage`` entry of ``info.json``."""
    return {"dtype": STORAGE_DTYPE, "folder": FOLDER, "rows": n_rows, "rows_per_shard": rows_per_shard,
            "shards": n_shards(n_rows=n_rows, rows_per_shard=rows_per_shard)}


class ClipWriter:
    """Appends clips row by row to the shards of the audio folder ``audio_dir``, writing each full shard.

    Rows already appended can be read back (:meth:`rows`) from the written shards or the shard being filled,
    also from another thread (a process pool's task feeder) while rows are appended.

    Parameters
    ----------
    audio_dir : str or Path
        Where the ``clips/`` folder is made; it must not exist yet.
    clip_samples : int
        Samples per row.
    rows_per_shard : int
        Rows per shard file (:func:`rows_per_shard`).
    """

    def __init__(self, audio_dir: str | Path, *, clip_samples: int, rows_per_shard: int) -> None:
        self.audio_dir, self.clip_samples, self.rows_per_shard = Path(audio_dir), clip_samples, rows_per_shard
        (self.audio_dir / FOLDER).mkdir(parents=True)
        self._pending = np.empty((rows_per_shard, clip_samples), dtype=STORAGE_DTYPE)  # (K, L)
        self._n_pending = 0
        self._n_written = 0  # rows in shards on disk
        self._lock = threading.Lock()

    @property
    def n_rows(self) -> int:
        """Rows appended so far."""
        return self._n_written + self._n_pending

    def append(self, y: np.ndarray) -> None:
        """Store one clip, float ``(clip_samples,)``.

        Raises
        ------
        DataError
            Naming the shard, when a sample is not finite or beyond float16's range (|x| > 65504).
        """
        with np.errstate(over="ignore"):  # an overflow becomes inf, refused below
            stored = np.asarray(y).astype(STORAGE_DTYPE)
        if stored.shape != (self.clip_samples,):
            raise ValueError(f"clip of shape {stored.shape}; expected ({self.clip_samples},)")
        if not np.all(np.isfinite(stored)):
            path = shard_path(self.audio_dir, index=self.n_rows // self.rows_per_shard)
            raise DataError(f"{path}: row {self.n_rows} holds a sample that is not finite or beyond float16's "
                            "range (|x| > 65504); audio should lie within [-1, 1]")
        with self._lock:
            self._pending[self._n_pending] = stored
            self._n_pending += 1
            if self._n_pending == self.rows_per_shard:
                self._flush()

    def close(self) -> int:
        """Write the last (partial) shard; return the number of rows written."""
        with self._lock:
            self._flush()
            return self._n_written

    def rows(self, indices: Sequence[int]) -> np.ndarray:
        """Float32 ``(len(indices), clip_samples)`` of rows appended so far, in the given order."""
        indices = np.asarray(indices, dtype=np.int64)
        with self._lock:
            if indices.size and (indices.min() < 0 or indices.max() >= self.n_rows):
                raise IndexError(f"rows outside [0, {self.n_rows}) of {self.audio_dir / FOLDER}")
            out = np.empty((len(indices), self.clip_samples), dtype=np.float32)
            pending = indices >= self._n_written
            out[pending] = self._pending[indices[pending] - self._n_written]
            on_disk = np.flatnonzero(~pending)
            shard_of, within = np.divmod(indices[on_disk], self.rows_per_shard)
            for s in np.unique(shard_of):
                where = np.flatnonzero(shard_of == s)
                n = min(self.rows_per_shard, self._n_written - int(s) * self.rows_per_shard)
                data = n * self.clip_samples * self._pending.itemsize
                offset = npy_nbytes(shape=(n, self.clip_samples), dtype=STORAGE_DTYPE) - data  # the header's
                out[on_disk[where]] = _read_rows(
                    shard_path(self.audio_dir, index=int(s)), offset=offset, within=within[where],
                    clip_samples=self.clip_samples, first_row=int(s) * self.rows_per_shard,
                    hint="a shard written by this run")
        return out

    def _flush(self) -> None:
        if self._n_pending:
            index = self._n_written // self.rows_per_shard
            write_npy(shard_path(self.audio_dir, index=index), self._pending[: self._n_pending])
            self._n_written += self._n_pending
            self._n_pending = 0


class ClipShards:
    """The clips of an audio folder, read from its shards with ordinary reads of the rows asked for.

    Opening checks every shard's header and size against the expected layout (no sample is read); reading
    checks that the samples read are finite. Picklable (paths and numbers only), so worker processes can read.

    Parameters
    ----------
    audio_dir : str or Path
        The audio folder (the one holding ``clips/``).
    n_rows, clip_samples, rows_per_shard : int
        The layout expected (from ``index.csv`` and ``info.json``).
    hint : str
        What to do about a bad shard, for messages.

    Raises
    ------
    DataError
        Naming the shard: missing, not a float16 ``.npy`` array, of another shape (row count or clip length),
        truncated or with trailing bytes; or naming the folder when it holds shards beyond the expected ones.
    """

    def __init__(self, audio_dir: str | Path, *, n_rows: int, clip_samples: int, rows_per_shard: int,
                 hint: str = "rerun the augment stage") -> None:
        self.folder = Path(audio_dir) / FOLDER
        self.n_rows, self.clip_samples, self.rows_per_shard = n_rows, clip_samples, rows_per_shard
        self.hint = hint
        count = n_shards(n_rows=n_rows, rows_per_shard=rows_per_shard)
        self.paths = [shard_path(audio_dir, index=i) for i in range(count)]
        self.offsets = [self._check(path, n=min(rows_per_shard, n_rows - i * rows_per_shard))
                        for i, path in enumerate(self.paths)]
        extra = sorted({p.name for p in self.folder.glob(f"{FOLDER}-*.npy")} - {p.name for p in self.paths})
        if extra:
            raise DataError(f"{self.folder}: holds shards {extra[:3]} beyond the {count} expected for {n_rows} "
                            f"rows of {rows_per_shard} per shard ({hint})")

    def _check(self, path: Path, *, n: int) -> int:
        """The offset of the data in the shard ``path`` of ``n`` rows, after checking its header and size."""
        expected = f"a {STORAGE_DTYPE} clips shard of shape ({n}, {self.clip_samples})"
        try:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                if version not in _HEADER_READERS:
                    raise ValueError(f".npy format version {version}")
                shape, fortran, dtype = _HEADER_READERS[version](fh)
                offset = fh.tell()
        except FileNotFoundError:
            raise DataError(f"{path}: missing; expected {expected} ({self.hint})") from None
        except OSError as exc:  # a folder, a device, ...
            raise DataError(f"{path}: cannot be read ({exc.strerror}); expected {expected} ({self.hint})") from None
        # not an .npy file, or a header numpy refuses; on arbitrary bytes its header parser fails anyhow
        # (ValueError, SyntaxError, tokenize.TokenError, ...), as in advaudio.loading
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{path}: not an .npy array ({' '.join(str(exc).split())[:120]}); expected {expected} "
                            f"({self.hint})") from None
        if dtype != np.dtype(STORAGE_DTYPE) or fortran or shape != (n, self.clip_samples):
            order = "Fortran-ordered " if fortran else ""
            raise DataError(f"{path}: holds {order}{dtype} {shape}; expected {expected} ({self.hint})")
        size, want = path.stat().st_size, offset + n * self.clip_samples * dtype.itemsize
        if size != want:
            what = "truncated" if size < want else "trailing bytes"
            raise DataError(f"{path}: {size} bytes, expected {want} for {expected} ({what}; {self.hint})")
        return offset

    def rows(self, indices: Sequence[int]) -> np.ndarray:
        """Float32 ``(len(indices), clip_samples)`` of the given rows, in the given order.

        Raises
        ------
        IndexError
            For a row outside ``[0, n_rows)``.
        DataError
            Naming the shard, when a row read holds a sample that is not finite, or the file shrank.
        """
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), self.clip_samples), dtype=np.float32)
        for where, block in self.chunks(indices):
            out[where] = block
        return out

    def chunks(self, indices: Sequence[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The given rows shard by shard: ``(positions in indices, float32 (len(positions), clip_samples))``.

        Raises as :meth:`rows` does.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.n_rows):
            raise IndexError(f"rows outside [0, {self.n_rows}) of {self.folder}")
        shard_of, within = np.divmod(indices, self.rows_per_shard)
        for s in np.unique(shard_of):
            where = np.flatnonzero(shard_of == s)
            yield where, self._read(int(s), within[where])

    def _read(self, shard: int, within: np.ndarray) -> np.ndarray:
        return _read_rows(self.paths[shard], offset=self.offsets[shard], within=within,
                          clip_samples=self.clip_samples, first_row=shard * self.rows_per_shard, hint=self.hint)


def _read_rows(path: Path, *, offset: int, within: np.ndarray, clip_samples: int, first_row: int,
               hint: str) -> np.ndarray:
    """Float32 ``(len(within), clip_samples)``: rows ``within`` (positions in the shard ``path``, whose data
    start at ``offset``), read with one ordinary read per run of consecutive rows; ``first_row`` is the
    shard's first row, for messages."""
    wanted = np.unique(within)
    stored = np.empty((len(wanted), clip_samples), dtype=STORAGE_DTYPE)
    row_bytes = stored.itemsize * clip_samples
    runs = np.split(np.arange(len(wanted)), np.flatnonzero(np.diff(wanted) != 1) + 1)
    with open(path, "rb") as fh:
        for run in runs:
            fh.seek(offset + int(wanted[run[0]]) * row_bytes)
            view = memoryview(stored[run[0] : run[-1] + 1]).cast("B")
            if fh.readinto(view) != len(view):
                raise DataError(f"{path}: truncated since it was opened ({hint})")
    bad = ~np.isfinite(stored).all(axis=1)
    if bad.any():
        row = first_row + int(wanted[np.argmax(bad)])
        raise DataError(f"{path}: row {row} holds a sample that is not finite (NaN or inf); {hint}")
    return stored[np.searchsorted(wanted, within)].astype(np.float32)
