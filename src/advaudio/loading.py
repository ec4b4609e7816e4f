"""Reading the project's own binary files (checkpoints, resume states, ``.npy``/``.npz`` arrays), which may be
missing, truncated, corrupt, of another kind or hostile: every failure is a :class:`~advaudio.errors.DataError`
that names the file and says what it should have been.

Nothing here unpickles Python objects: torch files are read with ``weights_only=True``, numpy files with
``allow_pickle=False``. A file that holds other objects is refused unloaded, and the message never repeats
torch's advice to load it with ``weights_only=False``: for our files that advice is wrong, and for a hostile
file it runs the attacker's code.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from advaudio.errors import DataError

# lines of torch's weights_only refusal that carry advice, not the reason
_TORCH_ADVICE = ("weights only load failed", "weights_only", "file an issue", "documentation of torch.load",
                 "safe_globals", "please use", "if you trust")


def load_torch(path: str | Path, *, kind: str) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, every failure named.

    A torch zip file (what ``torch.save`` writes) has the CRC-32 of every member checked first
    (:func:`check_zip`): torch itself never checks them, and loads a tensor whose bytes were overwritten. The
    check reads the whole file once more before torch reads it: a small cost at our files' sizes (megabytes to
    a few hundred megabytes: checkpoints, resume states, ImageNet weights), but one to weigh before loading
    files of many gigabytes through here.

    Parameters
    ----------
    path : str or Path
        The file.
    kind : str
        What it should be, for messages: ``"an advaudio checkpoint"``.

    Raises
    ------
    DataError
        ``'<path>' is not <kind>: ...``: missing, unreadable as a torch file (text, truncated, corrupt: a member
        that fails its CRC check is named), or holding Python objects other than tensors and plain types
        (refused unloaded; it may be hostile).
    """
    import torch

    path = Path(path)
    check_zip(path, kind=kind)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")  # e.g. pickle protocol
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{str(path)!r} not found (expected {kind})") from None
    except pickle.UnpicklingError as exc:
        raise DataError(f"{str(path)!r} is not {kind}: {_refusal(exc)}") from None
    # On arbitrary bytes the unpickler fails with whatever its parser hits (KeyError, IndexError, struct.error,
    # RuntimeError from the zip reader, ...); each is reported, named, as a file that is not a torch file.
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{str(path)!r} is not {kind}: it cannot be read as a torch file ({_first_line(exc)})") \
            from None


def check_zip(path: str | Path, *, kind: str) -> None:
    """Check the CRC-32 of every member of ``path`` when it is a zip file (reads it whole); else do nothing.

    Raises
    ------
    DataError
        ``'<path>' is not <kind>: its member '<name>' fails its CRC check (a corrupt file)``, or the zip reader's
        own error when the archive cannot be read through.
    """
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return  # not a zip: the loader reports what it is
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError) as exc:
        raise DataError(f"{str(path)!r} is not {kind}: its zip archive cannot be read through "
                        f"({_first_line(exc)}); a corrupt file") from None
    if bad is not None:
        raise DataError(f"{str(path)!r} is not {kind}: its member {bad!r} fails its CRC check (a corrupt file)")


def first_nonfinite(value: Any, *, where: str) -> str | None:
    """Where the first floating-point tensor holding NaN or inf sits in ``value`` (nested dicts, lists and
    tuples of tensors and plain types, as a torch file loads), e.g. ``"state_dict['fc.weight']"``; None when
    there is none. Integer tensors and plain numbers are not looked at.

    Parameters
    ----------
    value : object
        What was loaded.
    where : str
        The name of ``value`` itself, the start of the returned path.
    """
    import torch

    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:  # sparse or other layouts: never ours, and isfinite cannot judge them
            return f"{where} (a {value.layout} tensor)"
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            return where
        return None
    if isinstance(value, dict):
        items = ((f"{where}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for name, item in items:
        found = first_nonfinite(item, where=name)
        if found is not None:
            return found
    return None


def read_npz(path: str | Path, *, keys: Sequence[str] | None = None, kind: str, hint: str) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (all when None) of the ``.npz`` at ``path``, read whole, nothing unpickled.

    Raises
    ------
    DataError
        ``<path>: not found (<hint>)``; ``'<path>' is not <kind>: ...`` (not an .npz archive, truncated, corrupt
        or holding pickled objects); ``<path>: missing arrays [...]`` when a key is absent.
    """
    path = Path(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: not found ({hint})") from None
    except Exception as exc:  # noqa: BLE001  (as in load_torch: a parser fed arbitrary bytes fails anyhow)
        raise DataError(f"{str(path)!r} is not {kind}: {_first_line(exc)} ({hint})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{str(path)!r} is not {kind}: an .npy array, not an .npz archive ({hint})")
    with npz:
        missing = [k for k in keys or () if k not in npz.files]
        if missing:
            raise DataError(f"{path}: missing arrays {missing}; found {sorted(npz.files)} ({hint})")
        try:
            return {k: npz[k] for k in (npz.files if keys is None else keys)}
        except Exception as exc:  # noqa: BLE001  (a corrupt member: bad CRC, zlib error, a refused pickle, ...)
            raise DataError(f"{str(path)!r} is not {kind}: {_first_line(exc)} ({hint})") from None


def open_npy(path: str | Path, *, kind: str, hint: str) -> np.memmap:
    """The ``.npy`` array at ``path``, memory-mapped read-only, nothing unpickled.

    Raises
    ------
    DataError
        ``<path>: not found (<hint>)`` or ``'<path>' is not <kind>: ...`` (not an .npy array, a truncated one,
        an object array).
    """
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: not found ({hint})") from None
    except Exception as exc:  # noqa: BLE001  (as in load_torch: a parser fed arbitrary bytes fails anyhow)
        raise DataError(f"{str(path)!r} is not {kind}: {_first_line(exc)} ({hint})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise DataError(f"{str(path)!r} is not {kind}: an .npz archive, not an .npy array ({hint})")
    return array


def one_line(text: str, *, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    """The exception's type and first sentence (torch appends paragraphs of advice)."""
    lines = str(exc).strip().splitlines()
    first = lines[0].split(". ")[0] if lines else ""
    return one_line(f"{type(exc).__name__}: {first}".rstrip(": "), limit=200)


def _refusal(exc: BaseException) -> str:
    """Why torch's ``weights_only`` unpickler refused a file, without its advice to load or allow it anyway."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (f"it holds the Python object {found[1]}, not only tensors and plain types; refused unloaded, "
                f"as the file may be hostile")
    kept = [line.strip() for line in text.splitlines()
            if line.strip() and not any(a in line.lower() for a in _TORCH_ADVICE)]
    return (f"the safe loader refused it unloaded ({one_line(' '.join(kept), limit=120) or type(exc).__name__}): a "
            f"corrupt file, another kind of file, or one that may be hostile")
