"""Checks on a dataset's metadata csv, row by row and as a whole, so that no row is trusted unread.

Every refusal is a :class:`~advaudio.errors.DataError` naming the csv and the line (or lines) at fault:

- a row that lacks a field, has more fields than the header, or leaves a required field empty;
- an integer column that is not an integer or lies outside the dataset's official range;
- a file name that is not a bare name (``../x.wav``, ``/etc/x.wav``, ``sub/x.wav``), or a listed path that
  resolves outside the dataset root (symlinks included; DVC's own cache is allowed, since ``dvc checkout``
  with ``cache.type symlink`` links every tracked file there);
- an official file name that contradicts its own row (ESC-50 ``fold-src_file-take-target.wav``,
  UrbanSound8K ``fsID-classID-occurrence-slice.wav``);
- a clip listed twice (the same file name, in one fold or two) and a source recording in two folds.
"""

from __future__ import annotations

import csv
import os
import re
import stat
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from advaudio.errors import DataError

if TYPE_CHECKING:
    from advaudio.data.datasets import Clip


_ASCII_NUMBER = re.compile(r"[0-9]{1,18}")  # int() also takes other scripts' digits, '_' and any length


def read_rows(
    path: Path, *, columns: Sequence[str], required: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` for each data row of a metadata csv, values stripped.

    Parameters
    ----------
    path : Path
        The csv (UTF-8, a byte-order mark tolerated).
    columns : sequence of str
        Columns the header must hold (others are allowed and ignored).
    required : sequence of str
        Columns every row must fill with a non-empty value.

    Raises
    ------
    DataError
        Not UTF-8, a missing column, a row with fewer or more fields than the header, an empty required
        field, or no rows at all; the message names the csv and the line.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: tolerate a byte-order mark
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}; expected columns {list(columns)}")
            repeated = sorted({h for h in header if header.count(h) > 1})
            if repeated:
                raise DataError(f"{path}, line 1: column(s) {repeated} appear more than once in the header")
            reader.fieldnames = header
            n_rows = 0
            for row in reader:
                n_rows += 1
                # a quoted field may span lines; name the line the record starts on
                line = reader.line_num - sum(v.count("\n") for v in row.values() if isinstance(v, str))
                yield line, _checked_row(row, path=path, line=line, required=required)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 csv ({exc})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable csv ({exc})") from None
    if not n_rows:
        raise DataError(f"{path}: lists no clips")


class RowChecker:
    """Checks of single values of one csv, each naming the csv and the line.

    Parameters
    ----------
    csv_path : Path
        The metadata csv, for messages.
    root : Path
        The dataset root; every listed path must resolve inside it (or inside DVC's cache).
    """

    def __init__(self, *, csv_path: Path, root: Path) -> None:
        self.csv_path = csv_path
        self.root = root
        self._resolved_root = root.resolve()
        self._dvc_cache: Path | None | bool = False  # False: not looked up yet
        self.inside(csv_path)

    def _at(self, line: int | None) -> str:
        return f"{self.csv_path}" if line is None else f"{self.csv_path}, line {line}"

    def integer(self, row: dict[str, str], column: str, *, line: int, lo: int, hi: int) -> int:
        """``row[column]`` as an integer in ``[lo, hi]``; only ASCII digits with an optional sign (``int()``
        would also take ``1_0`` and other scripts' digits)."""
        value = row[column]
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", value):
            raise DataError(f"{self._at(line)}: column {column!r} must be an integer, got {value[:40]!r}")
        number = int(value)
        if not lo <= number <= hi:
            raise DataError(
                f"{self._at(line)}: column {column!r} is {number}; this dataset's {column} values are {lo}..{hi}"
            )
        return number

    def file_name(self, row: dict[str, str], column: str, *, line: int) -> str:
        """``row[column]`` if it is a bare file name (no folder, no ``..``, not absolute)."""
        name = row[column]
        bad = name in (".", "..") or "/" in name or "\\" in name or any(ord(ch) < 32 for ch in name)
        if bad or Path(name).name != name:
            raise DataError(
                f"{self._at(line)}: column {column!r} is {name[:80]!r}; expected a bare file name "
                "(no folder, no '..', no control character, not an absolute path)"
            )
        return name

    def name_agrees(self, name: str, *, pattern: str, line: int, fields: dict[str, object]) -> None:
        """Check that an official file name agrees with its row: each named group of ``pattern`` that is a
        key of ``fields`` must equal that column's value. Names that do not follow ``pattern`` are not
        compared (a user's own dataset in the official layout may name files freely)."""
        match = re.fullmatch(pattern, name, flags=re.IGNORECASE)
        if match is None:
            return
        for column, value in fields.items():
            said = match.group(column)
            if _canonical(said) != _canonical(str(value)):
                raise DataError(
                    f"{self._at(line)}: file name {name!r} says {column} {said} but the row's {column} is "
                    f"{value}; the same recording would count as two"
                )

    def inside(self, path: Path, *, line: int | None = None) -> Path:
        """``path`` if it resolves inside the dataset root (following symlinks) or inside DVC's cache."""
        resolved = path.resolve()
        if resolved.is_relative_to(self._resolved_root):
            return path
        cache = self._dvc_cache_dir()
        if path.is_symlink() and cache is not None and resolved.is_relative_to(cache):
            return path
        raise DataError(
            f"{self._at(line)}: {path} resolves to {resolved}, outside dataset_dir {str(self.root)!r}; "
            "advaudio reads only files inside dataset_dir (DVC tracks nothing else)"
        )

    def _dvc_cache_dir(self) -> Path | None:
        if self._dvc_cache is False:
            self._dvc_cache = _dvc_cache_dir(self._resolved_root)
        return self._dvc_cache  # type: ignore[return-value]


def source_id(value: str, *, csv_path: Path, line: int, column: str) -> str:
    """A source id (a Freesound id in ESC-50 and UrbanSound8K) as one string per recording: ASCII digits
    without leading zeros (``01004`` is ``1004``), so that two spellings of one recording cannot pass as two
    sources.

    Raises
    ------
    DataError
        For anything but 1 to 18 ASCII digits (``+200``, ``200.0``, ``２００`` and ``0x200`` included).
    """
    if not _ASCII_NUMBER.fullmatch(value):
        raise DataError(f"{csv_path}, line {line}: column {column!r} is {value[:40]!r}; expected a source id of "
                        "ASCII digits")
    return _canonical(value)


def regular_file_problem(path: Path) -> str:
    """Why ``path`` cannot be read as a file ("" if it is a regular file, symlinks followed)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"{path}: not found"
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror})"
    if stat.S_ISREG(mode):
        return ""
    kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
    return f"{path}: is {kind}, not a regular file; advaudio reads only regular files (README: bringing a dataset)"


def non_regular_files(root: Path) -> list[Path]:
    """Every entry under ``root`` (symlinks followed to their target, folders not entered through links) that is
    neither a regular file nor a folder: FIFOs, sockets, devices, dangling links. DVC hashes whatever sits in a
    tracked folder and blocks forever reading a FIFO, so these are looked for before DVC gets there."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if regular_file_problem(path) and not path.is_dir():
                found.append(path)
    return sorted(found)


def check_listing(clips: Sequence["Clip"], *, csv_path: Path) -> tuple["Clip", ...]:
    """Return ``clips`` as a tuple after checking the listing as a whole.

    Raises
    ------
    DataError
        A clip listed twice (the same file name, in one fold or in two), or one source recording in two
        folds (its clips would straddle train and test); the message names both lines.
    """
    first: dict[str, "Clip"] = {}
    for clip in clips:
        seen = first.setdefault(clip.clip_id, clip)
        if seen is not clip:
            raise DataError(
                f"{csv_path}, lines {seen.line} and {clip.line}: clip {clip.clip_id!r} is listed twice "
                f"(folds {seen.fold} and {clip.fold}); each clip must be listed once"
            )
    folds: dict[str, dict[int, "Clip"]] = defaultdict(dict)
    for clip in clips:
        folds[clip.source_id].setdefault(clip.fold, clip)
        if len(folds[clip.source_id]) > 1:
            a, b = list(folds[clip.source_id].values())[:2]
            raise DataError(
                f"{csv_path}, lines {a.line} and {b.line}: source {clip.source_id!r} is in folds {a.fold} and "
                f"{b.fold}; clips of one recording must share a fold, or it leaks across the split"
            )
    return tuple(clips)


# --- helpers ---------------------------------------------------------------------------------------


def _checked_row(row: dict, *, path: Path, line: int, required: Sequence[str]) -> dict[str, str]:
    if None in row:  # DictReader's restkey: more fields than the header
        raise DataError(f"{path}, line {line}: {len(row) - 1 + len(row[None])} fields; the header has {len(row) - 1}")
    absent = [c for c, v in row.items() if v is None]
    if absent:
        raise DataError(f"{path}, line {line}: missing field(s) {absent}; the row is shorter than the header")
    row = {k: v.strip() for k, v in row.items()}
    empty = [c for c in required if not row[c]]
    if empty:
        raise DataError(f"{path}, line {line}: empty field(s) {empty}; expected a value in each of {list(required)}")
    return row


def _canonical(value: str) -> str:
    """``value`` as the listing compares it: an ASCII number without leading zeros (``01004`` is ``1004``), other
    text as it is."""
    return str(int(value)) if _ASCII_NUMBER.fullmatch(value) else value


def _dvc_cache_dir(start: Path) -> Path | None:
    """DVC's local cache folder of the repository holding ``start``, or None outside one."""
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            break
    else:
        return None
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(folder)) as repo:
            return Path(repo.cache.local_cache_dir).resolve()
    except DvcException:  # DVC cannot read its config: no cache to allow
        return None
