"""Dataset readers (the ``DATASETS`` registry): each lists the clips of its official layout.

A reader takes the dataset root and the params and returns a :class:`Dataset`: class names, the default
clip length, the wavelet sample rate the study uses for it, the number of official folds and the table of
clips. Readers only read metadata; decoding happens in :mod:`advaudio.data.decode`. Every row is checked
against the dataset's official ranges and conventions by :mod:`advaudio.data.listing` (fields present,
labels and folds in range, file names that stay inside ``audio/``, no clip listed twice, no source in two
folds, names that agree with their columns); a bad row raises a DataError naming the csv and its line.

- ``esc50``: ``audio/*.wav`` + ``meta/esc50.csv`` (filename, fold, target, category, esc10, src_file, take).
- ``urbansound8k``: ``audio/foldN/*.wav`` + ``metadata/UrbanSound8K.csv`` (slice_file_name, fsID, start,
  end, salience, fold, classID, class).
- ``synth``: the ESC-50 layout written by the ``synth`` stage (marked by ``meta/synth.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from advaudio.config import Params
from advaudio.data import listing
from advaudio.errors import ConfigError, DataError
from advaudio.io import read_json_object
from advaudio.registry import Registry

ESC50_CSV = Path("meta/esc50.csv")
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
US8K_CSV = Path("metadata/UrbanSound8K.csv")
US8K_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
# Columns every row must fill (the others are informational and may be empty).
ESC50_REQUIRED = ("filename", "fold", "target", "category", "src_file")
US8K_REQUIRED = ("slice_file_name", "fsID", "fold", "classID", "class")
# Official names: ESC-50 is fold-src_file-take-target.wav, UrbanSound8K fsID-classID-occurrence-slice.wav.
ESC50_NAME = r"(?P<fold>\d+)-(?P<src_file>[^-]+)-(?P<take>[^-]+)-(?P<target>\d+)\.wav"
US8K_NAME = r"(?P<fsID>\d+)-(?P<classID>\d+)-(?P<occurrence>\d+)-(?P<slice>\d+)\.wav"
ESC50_N_CLASSES, ESC50_N_FOLDS = 50, 5
US8K_N_FOLDS = 10
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
    one recording and must stay on one side of a split. ``line`` is the clip's line in the metadata csv."""

    path: Path
    clip_id: str
    source_id: str
    fold: int
    label: int
    category: str
    line: int = 0


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
        Malformed metadata (missing column or field, a value out of the dataset's range, a path leaving
        ``root``, a clip listed twice, a source in two folds, a name contradicting its row); the message
        names the csv and the line.
    """
    reader = DATASETS.get(name)
    return reader(root=Path(root), params=params)


@DATASETS.register("esc50")
def read_esc50(*, root: Path, params: Params) -> Dataset:
    """ESC-50 (Piczak 2015): 2000 clips of 5 s, 50 classes (targets 0-49), 5 official folds."""
    _require_layout(name="esc50", root=root, metadata=ESC50_CSV)
    if (root / SYNTH_MARKER).exists():
        raise ConfigError(
            f"dataset_dir {str(root)!r} holds the synthetic dataset ({SYNTH_MARKER}); "
            f"set -S dataset=synth, or -S dataset_dir={DEFAULT_DIRS['esc50']} for ESC-50"
        )
    return _read_esc50_layout(
        name="esc50", root=root, clip_seconds=5.0, dwt_sample_rate=16000,
        n_classes=ESC50_N_CLASSES, n_folds=ESC50_N_FOLDS,
    )


@DATASETS.register("synth")
def read_synth(*, root: Path, params: Params) -> Dataset:
    """The built-in synthetic dataset, as written by the ``synth`` stage in the ESC-50 layout; its class and
    fold counts are read from ``meta/synth.json``."""
    _require_layout(name="synth", root=root, metadata=ESC50_CSV)
    if not (root / SYNTH_MARKER).exists():
        raise ConfigError(
            f"dataset_dir {str(root)!r} has no {SYNTH_MARKER}, so it is not the synthetic dataset; "
            f"set -S dataset_dir={DEFAULT_DIRS['synth']} (written by the synth stage) or -S dataset=esc50"
        )
    listing.RowChecker(csv_path=root / ESC50_CSV, root=root).inside(root / SYNTH_MARKER)
    if problem := listing.regular_file_problem(root / SYNTH_MARKER):
        raise DataError(problem)
    marker = read_json_object(root / SYNTH_MARKER, missing_hint="written by the synth stage")
    config = marker.get("synth")
    if not isinstance(config, dict) or not all(
        type(config.get(k)) is int and 0 < config[k] <= 10_000 for k in ("n_classes", "n_folds")
    ):
        raise DataError(f"{root / SYNTH_MARKER}: expected 'synth' with integers n_classes and n_folds in 1..10000")
    return _read_esc50_layout(
        name="synth",
        root=root,
        clip_seconds=params.synth.clip_seconds,
        dwt_sample_rate=params.spectrogram.dwt_sample_rate,
        n_classes=config["n_classes"],
        n_folds=config["n_folds"],
    )


@DATASETS.register("urbansound8k")
def read_urbansound8k(*, root: Path, params: Params) -> Dataset:
    """UrbanSound8K (Salamon et al. 2014): 8732 clips of <= 4 s, 10 classes, 10 official folds."""
    _require_layout(name="urbansound8k", root=root, metadata=US8K_CSV)
    csv_path = root / US8K_CSV
    check = listing.RowChecker(csv_path=csv_path, root=root)
    clips = []
    for line, row in listing.read_rows(csv_path, columns=US8K_COLUMNS, required=US8K_REQUIRED):
        fold = check.integer(row, "fold", line=line, lo=1, hi=US8K_N_FOLDS)
        label = check.integer(row, "classID", line=line, lo=0, hi=len(US8K_CLASSES) - 1)
        if row["class"] != US8K_CLASSES[label]:
            raise DataError(
                f"{csv_path}, line {line}: class {row['class']!r} does not match classID {label}; "
                f"UrbanSound8K's class {label} is {US8K_CLASSES[label]!r}"
            )
        file_name = check.file_name(row, "slice_file_name", line=line)
        source = listing.source_id(row["fsID"], csv_path=csv_path, line=line, column="fsID")
        check.name_agrees(file_name, pattern=US8K_NAME, line=line, fields={"fsID": source, "classID": label})
        clips.append(
            Clip(
                path=check.inside(root / "audio" / f"fold{fold}" / file_name, line=line),
                clip_id=Path(file_name).stem,
                source_id=source,
                fold=fold,
                label=label,
                category=row["class"],
                line=line,
            )
        )
    return Dataset(
        name="urbansound8k",
        root=root,
        metadata=csv_path,
        class_names=_class_names(clips, csv_path=csv_path, official=US8K_CLASSES),
        clip_seconds=4.0,
        dwt_sample_rate=8000,
        n_folds=US8K_N_FOLDS,
        clips=listing.check_listing(clips, csv_path=csv_path),
    )


# --- helpers ---------------------------------------------------------------------------------------


def _read_esc50_layout(
    *, name: str, root: Path, clip_seconds: float, dwt_sample_rate: int, n_classes: int, n_folds: int
) -> Dataset:
    csv_path = root / ESC50_CSV
    check = listing.RowChecker(csv_path=csv_path, root=root)
    clips = []
    for line, row in listing.read_rows(csv_path, columns=ESC50_COLUMNS, required=ESC50_REQUIRED):
        fold = check.integer(row, "fold", line=line, lo=1, hi=n_folds)
        label = check.integer(row, "target", line=line, lo=0, hi=n_classes - 1)
        file_name = check.file_name(row, "filename", line=line)
        source = listing.source_id(row["src_file"], csv_path=csv_path, line=line, column="src_file")
        check.name_agrees(
            file_name, pattern=ESC50_NAME, line=line, fields={"fold": fold, "src_file": source, "target": label}
        )
        clips.append(
            Clip(
                path=check.inside(root / "audio" / file_name, line=line),
                clip_id=Path(file_name).stem,
                source_id=source,
                fold=fold,
                label=label,
                category=row["category"],
                line=line,
            )
        )
    return Dataset(
        name=name,
        root=root,
        metadata=csv_path,
        class_names=_class_names(clips, csv_path=csv_path, official=()),
        clip_seconds=clip_seconds,
        dwt_sample_rate=dwt_sample_rate,
        n_folds=n_folds,
        clips=listing.check_listing(clips, csv_path=csv_path),
    )


def _require_layout(*, name: str, root: Path, metadata: Path) -> None:
    if (root / metadata).is_file():
        return
    if (root / metadata).exists():
        raise DataError(listing.regular_file_problem(root / metadata))
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


def _class_names(clips: list[Clip], *, csv_path: Path, official: tuple[str, ...]) -> tuple[str, ...]:
    """Class names by label. A subset of a dataset may lack some classes; labels keep their official index
    and the gaps get the official name (or a placeholder), so label i means the same class in every subset.

    Raises
    ------
    DataError
        If one label carries two category names; the message names both lines.
    """
    first: dict[int, Clip] = {}
    named: dict[str, Clip] = {}
    for clip in clips:
        seen = first.setdefault(clip.label, clip)
        if seen.category != clip.category:
            raise DataError(
                f"{csv_path}, line {clip.line}: label {clip.label} is {clip.category!r} here but "
                f"{seen.category!r} on line {seen.line}"
            )
        seen = named.setdefault(clip.category, clip)
        if seen.label != clip.label:
            raise DataError(
                f"{csv_path}, line {clip.line}: category {clip.category!r} is label {clip.label} here but "
                f"{seen.label} on line {seen.line}; one class must have one label"
            )
    n = max(len(official), max(first) + 1)
    defaults = list(official) + [f"class_{i}" for i in range(len(official), n)]
    return tuple(first[i].category if i in first else defaults[i] for i in range(n))
