"""Atomic file writes: write beside the target, then ``os.replace``, so nothing is left half-written.

A write that runs out of disk space raises :class:`~advaudio.errors.DiskFullError` naming the target, the bytes
it needs (where known) and the bytes free, and leaves nothing behind. Arrays are written with ordinary file
writes, never through a memory map: a page written to a sparse mapped file on a full disk kills the process
with SIGBUS, with no message at all, and a mapping's written pages count as the writer's dirty memory.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from advaudio.errors import DataError, DiskFullError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str | Path) -> int:
    """Bytes this user may still write on the filesystem of ``path`` (or of its nearest existing parent)."""
    folder = Path(path).absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def no_space(path: str | Path, *, need: int | None = None) -> DiskFullError:
    """The error for ``path`` not fitting: ``no space left on <path>: need N bytes, M free``."""
    free = free_bytes(path)
    if need is None:
        return DiskFullError(f"no space left on {path}: {free} bytes free")
    return DiskFullError(f"no space left on {path}: need {need} bytes, {free} free")


def check_space(path: str | Path, *, need: int) -> None:
    """Raise :class:`DiskFullError` unless ``need`` bytes fit at ``path`` (a file or a folder)."""
    if free_bytes(path) < need:
        raise no_space(path, need=need)


def _out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` or an error it was raised from is ENOSPC/EDQUOT (torch wraps it in a RuntimeError)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def atomic_path(path: str | Path, *, need: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    Parameters
    ----------
    path : str or Path
        The target.
    need : int, optional
        Bytes the file will take; checked against the free space before anything is written.

    Raises
    ------
    DiskFullError
        When ``need`` bytes are not free, or a write in the block runs out of space.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if need is not None:
        check_space(path, need=need)
    tmp_path, full = None, False
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; outputs should be readable like normal files
        os.replace(tmp_path, path)
    except (OSError, RuntimeError) as exc:  # torch reports a failed write as a RuntimeError
        if not _out_of_space(exc):
            raise
        full = True
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()
    if full:  # raised once the partial file is gone, so the free bytes reported are those really free
        raise no_space(path, need=need)


def npy_nbytes(*, shape: Sequence[int], dtype: np.dtype | str) -> int:
    """Size in bytes of the ``.npy`` file of a C-ordered ``(shape, dtype)`` array, header included."""
    dtype = np.dtype(dtype)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    )
    return len(header.getvalue()) + math.prod(shape) * dtype.itemsize


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically. NaN and infinity are refused (not valid JSON)."""
    write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` atomically, after checking that it fits."""
    with atomic_path(path, need=len(data)) as tmp:
        tmp.write_bytes(data)


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Save one C-ordered array in ``.npy`` format with ordinary file writes, atomically, its space checked first.

    No memory map is involved, so the written pages are never the caller's dirty memory; a full disk is an
    ordinary ``ENOSPC`` write error, raised as :class:`DiskFullError`.
    """
    array = np.ascontiguousarray(array)
    with atomic_path(path, need=npy_nbytes(shape=array.shape, dtype=array.dtype)) as tmp:
        with open(tmp, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(array))
            # not np.lib.format.write_array: its ndarray.tofile reports a full disk as an OSError with no errno
            fh.write(memoryview(array).cast("B"))


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Save several arrays in one compressed ``.npz``, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def discard(path: str | Path, *, reason: str, then: str) -> None:
    """Delete the unusable file or folder ``path`` (a resume state) and say so in one line on stderr:
    ``<path>: discarded (<reason>); <then>``."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    print(f"{path}: discarded ({' '.join(reason.split())}); {then}", file=sys.stderr, flush=True)


def read_json_object(path: str | Path, *, missing_hint: str) -> dict[str, Any]:
    """Read a JSON file that must hold an object.

    Raises
    ------
    DataError
        Naming the file: ``"<path>: not found (<missing_hint>)"``, not valid JSON, or not an object.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: not found ({missing_hint})") from None
    except OSError as exc:  # a folder, a device, ...
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    # ValueError: JSONDecodeError, and Python's limit on an integer's digits; RecursionError: absurd nesting
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj
