"""Dataset readers (the ``DATASETS`` registry): each lists the clips of its official layout.

A reader takes the dataset root and the params and returns a :class:`Dataset`: class names, the default
clip length, the wavelet sample rate the study uses for it, the number of official folds and the table of
clips. Readers only read metadata; decoding happens in :mod:`advaudio.data.decode`.

- ``esc50``: ``audio/*.wav`` + ``meta/esc50.csv`` (filename, fold, target, category, esc10, src_file, take).
- ``urbansound8k``: ``audio/foldN/*.wav`` + ``metadata/UrbanSound8K.csv`` (slice_file_name, fsID, start,
  end, salience, fold, classID, class).
- ``synth``: the ESC-50 layout written by the ``synth`` stage (marked by ``meta/synth.json``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from advaudio.config import Params
from advaudio.errors import ConfigError, DataError
from advaudio.registry import Registry

ESC50_CSV = Path("meta/esc50.csv")
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
US8K_CSV = Path("metadata/UrbanSound8K.csv")
US8K_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
SYNTH_MARKER = Path("meta/synth.json")
# UrbanSound8K's classes in classID order; the synthetic dataset imitates them.
US8K_CLASSES = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)
DEFAULT_DIRS = {"synth": "build/synth", "esc50": "data/ESC-50", "urbansound8k": "data/UrbanSound8K"}


@dataclass(frozen=True)
class Clip:
    """One listed clip. ``label`` indexes ``Dataset.class_names``; clips sharing ``source_id`` come from
    one recording and must stay on one side of a split."""

    path: Path
    clip_id: str
    source_id: str
    fold: int
    label: int
    category: str


@dataclass(frozen=True)
class Dataset:
    """A dataset's listing and the constants the study uses for it."""

    name: str
    root: Path
    metadata: Path
    class_names: tuple[str, ...]
    clip_seconds: float
    dwt_sample_rate: int
    n_folds: int
    clips: tuple[Clip, ...]

    @property
    def folds(self) -> list[int]:
        """Sorted folds that occur in the listing."""
        return sorted({c.fold for c in self.clips})


Reader = Callable[..., Dataset]
DATASETS: Registry[Reader] = Registry("dataset")


def open_dataset(*, name: str, root: str | Path, params: Params) -> Dataset:
    """List the clips of dataset ``name`` stored under ``root``.

    Raises
    ------
    ConfigError
        Unknown dataset name, or ``root`` does not hold that dataset (the message says which
        ``dataset_dir`` to set).
    DataError
        Malformed metadata (missing column, bad value); the message names the csv.
    """
    reader = DATASETS.get(name)
    return reader(root=Path(root), params=params)


@DATASETS.register("esc50")
def read_esc50(*, root: Path, params: Params) -> Dataset:
    """ESC-50 (Piczak 2015): 2000 clips of 5 s, 50 classes, 5 official folds."""
    _require_layout(name="esc50", root=root, metadata=ESC50_CSV)
    if (root / SYNTH_MARKER).exists():
        raise ConfigError(
            f"dataset_dir {str(root)!r} holds the synthetic dataset ({SYNTH_MARKER}); "
            f"set -S dataset=synth, or -S dataset_dir={DEFAULT_DIRS['esc50']} for ESC-50"
        )
    return _read_esc50_layout(
        name="esc50", root=root, clip_seconds=5.0, dwt_sample_rate=16000, n_folds=5
    )


@DATASETS.register("synth")
def read_synth(*, root: Path, params: Params) -> Dataset:
    """The built-in synthetic dataset, as written by the ``synth`` stage in the ESC-50 layout."""
    _require_layout(name="synth", root=root, metadata=ESC50_CSV)
    if not (root / SYNTH_MARKER).exists():
        raise ConfigError(
            f"dataset_dir {str(root)!r} has no {SYNTH_MARKER}, so it is not the synthetic dataset; "
            f"set -S dataset_dir={DEFAULT_DIRS['synth']} (written by the synth stage) or -S dataset=esc50"
        )
    ds = _read_esc50_layout(
        name="synth",
        root=root,
        clip_seconds=params.synth.clip_seconds,
        dwt_sample_rate=params.spectrogram.dwt_sample_rate,
        n_folds=0,
    )
    return replace(ds, n_folds=len(ds.folds))


@DATASETS.register("urbansound8k")
def read_urbansound8k(*, root: Path, params: Params) -> Dataset:
    """UrbanSound8K (Salamon et al. 2014): 8732 clips of <= 4 s, 10 classes, 10 official folds."""
    _require_layout(name="urbansound8k", root=root, metadata=US8K_CSV)
    csv_path = root / US8K_CSV
    rows = _read_csv(csv_path, US8K_COLUMNS)
    labels = {}
    clips = []
    for i, row in enumerate(rows, start=2):
        fold = _to_int(row["fold"], csv_path=csv_path, line=i, column="fold")
        label = _to_int(row["classID"], csv_path=csv_path, line=i, column="classID")
        name = row["slice_file_name"]
        clips.append(
            Clip(
                path=root / "audio" / f"fold{fold}" / name,
                clip_id=Path(name).stem,
                source_id=row["fsID"].strip(),
                fold=fold,
                label=label,
                category=row["class"],
            )
        )
        _check_label(labels, label=label, category=row["class"], csv_path=csv_path, line=i)
    return Dataset(
        name="urbansound8k",
        root=root,
        metadata=csv_path,
        class_names=_class_names(labels, csv_path=csv_path, official=US8K_CLASSES),
        clip_seconds=4.0,
        dwt_sample_rate=8000,
        n_folds=10,
        clips=tuple(clips),
    )


# --- helpers ---------------------------------------------------------------------------------------


def _read_esc50_layout(
    *, name: str, root: Path, clip_seconds: float, dwt_sample_rate: int, n_folds: int
) -> Dataset:
    csv_path = root / ESC50_CSV
    rows = _read_csv(csv_path, ESC50_COLUMNS)
    labels = {}
    clips = []
    for i, row in enumerate(rows, start=2):
        label = _to_int(row["target"], csv_path=csv_path, line=i, column="target")
        clips.append(
            Clip(
                path=root / "audio" / row["filename"],
                clip_id=Path(row["filename"]).stem,
                source_id=row["src_file"].strip(),
                fold=_to_int(row["fold"], csv_path=csv_path, line=i, column="fold"),
                label=label,
                category=row["category"],
            )
        )
        _check_label(labels, label=label, category=row["category"], csv_path=csv_path, line=i)
    return Dataset(
        name=name,
        root=root,
        metadata=csv_path,
        class_names=_class_names(labels, csv_path=csv_path, official=()),
        clip_seconds=clip_seconds,
        dwt_sample_rate=dwt_sample_rate,
        n_folds=n_folds,
        clips=tuple(clips),
    )


def _require_layout(*, name: str, root: Path, metadata: Path) -> None:
    if (root / metadata).is_file():
        return
    found = [n for n, m in (("esc50", ESC50_CSV), ("urbansound8k", US8K_CSV)) if (root / m).is_file()]
    what = "does not exist" if not root.exists() else f"has no {metadata}"
    hint = f" (it looks like {found[0]})" if found else ""
    default = DEFAULT_DIRS[name]
    fix = (
        f"put {name} there in its official layout (README: bringing a dataset)"
        if root == Path(default)
        else f"set -S dataset_dir={default} and put {name} there in its official layout"
    )
    raise ConfigError(f"dataset {name!r}: dataset_dir {str(root)!r} {what}{hint}; {fix}")


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: tolerate a byte-order mark
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}; expected columns {list(columns)}")
            reader.fieldnames = header
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 csv ({exc})") from None
    if not rows:
        raise DataError(f"{path}: lists no clips")
    return rows


def _to_int(value: str | None, *, csv_path: Path, line: int, column: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise DataError(f"{csv_path}, line {line}: column {column!r} must be an integer, got {value!r}") from None


def _check_label(labels: dict[int, str], *, label: int, category: str, csv_path: Path, line: int) -> None:
    if labels.setdefault(label, category) != category:
        raise DataError(
            f"{csv_path}, line {line}: label {label} is {category!r} here but {labels[label]!r} earlier"
        )


def _class_names(labels: dict[int, str], *, csv_path: Path, official: tuple[str, ...]) -> tuple[str, ...]:
    # A subset of a dataset may lack some classes; labels keep their official index and the gaps get the
    # official name (or a placeholder), so label i means the same class in every subset.
    if min(labels) < 0 or (official and max(labels) >= len(official)):
        hi = f"0..{len(official) - 1}" if official else ">= 0"
        raise DataError(f"{csv_path}: labels must be {hi}, got {sorted(labels)}")
    n = max(len(official), max(labels) + 1)
    defaults = list(official) + [f"class_{i}" for i in range(len(official), n)]
    return tuple(labels.get(i, defaults[i]) for i in range(n))
