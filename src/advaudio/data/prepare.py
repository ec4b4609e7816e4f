"""The ``augment`` stage's work: list, split, decode and pitch-shift a dataset into ``build/audio``.

Outputs (docs/ARCHITECTURE.md): ``clips.npy`` float32 ``(N, L)`` (originals in listing order, then the
pitch-shifted copies of the training pool, scale by scale), ``index.csv`` (one row per array row),
``info.json`` and ``skipped.csv`` (bad files skipped under ``audio.skip_bad_files``; header only if none).
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advaudio.config import Params
from advaudio.data.augment import augment_rows
from advaudio.data.datasets import Clip, Dataset, open_dataset
from advaudio.data.decode import SkippedFile, decode_clips
from advaudio.parallel import worker_pool
from advaudio.data.splits import PAPER_TEST_FOLD, TEST, TRAIN, Assignment, assign_splits, check_no_leakage
from advaudio.errors import DataError
from advaudio.io import allocate_npy, npy_output, write_json, write_text

INDEX_COLUMNS = ("row", "clip_id", "source_id", "fold", "label", "category", "augmentation", "split")
SKIPPED_COLUMNS = ("path", "reason")
_COPY_CHUNK = 256


@dataclass(frozen=True)
class PrepareResult:
    """What :func:`prepare_audio` wrote."""

    n_rows: int
    n_original: int
    n_augmented: int
    n_train: int
    n_test: int
    skipped: tuple[SkippedFile, ...]


def prepare_audio(*, params: Params, out_dir: str | Path) -> PrepareResult:
    """List ``params.dataset`` under ``params.dataset_dir``, split it, decode it and augment the training
    pool; write ``clips.npy``, ``index.csv``, ``info.json`` and ``skipped.csv`` into ``out_dir``.

    Raises
    ------
    ConfigError
        Unknown dataset, ``dataset_dir`` not holding that dataset, or a ``split.test_fold`` it lacks.
    DataError
        Malformed metadata, or a bad audio file while ``audio.skip_bad_files`` is false.
    DiskFullError
        When the decoded or the augmented clips do not fit on ``out_dir``'s disk (their space is reserved
        before they are written, so a full disk never kills the stage by SIGBUS); nothing is left half-written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(name=params.dataset, root=params.dataset_dir, params=params)
    assignments = assign_splits(dataset=ds, config=params.split, seed=params.seed)
    sample_rate = params.audio.sample_rate
    n_samples = round((params.audio.clip_seconds or ds.clip_seconds) * sample_rate)
    scales = [s for s in params.augment.scales if s != 1.0]

    with worker_pool(workers=params.augment.workers) as pool, tempfile.TemporaryDirectory(
        prefix=".decode.", dir=out_dir
    ) as scratch:
        originals = allocate_npy(Path(scratch) / "originals.npy", shape=(len(ds.clips), n_samples), dtype=np.float32)
        kept, skipped = decode_clips(
            clips=ds.clips,
            sample_rate=sample_rate,
            n_samples=n_samples,
            skip_bad_files=params.audio.skip_bad_files,
            out=originals,
            pool=pool,
        )
        _report_skipped(skipped, path=out_dir / "skipped.csv")  # written with the other outputs, at the end
        clips = [ds.clips[i] for i in kept]
        sides = [assignments[i] for i in kept]
        for side in (TRAIN, TEST):
            if not any(a.split == side for a in sides):
                raise DataError(f"{ds.metadata}: no usable clip left in the {side} split")
        _check_test_classes_are_trained(clips, sides, dataset=ds)
        train_rows = [k for k, a in enumerate(sides) if a.split == TRAIN]
        n_rows = len(clips) + len(train_rows) * len(scales)
        index = [_index_row(k, clips[k], sides[k], 1.0) for k in range(len(clips))]
        with npy_output(out_dir / "clips.npy", shape=(n_rows, n_samples), dtype=np.float32) as out:
            for start in range(0, len(clips), _COPY_CHUNK):
                stop = min(start + _COPY_CHUNK, len(clips))
                out[start:stop] = originals[start:stop]
            shifted = augment_rows(
                audio=originals, rows=train_rows, scales=scales, sample_rate=sample_rate, pool=pool
            )
            for row, (k, scale, y) in enumerate(shifted, start=len(clips)):
                out[row] = y
                index.append(_index_row(row, clips[k], sides[k], scale))

    check_no_leakage(source_ids=[r[2] for r in index], splits=[r[7] for r in index])
    write_text(out_dir / "skipped.csv", _csv_text(SKIPPED_COLUMNS, [(str(s.path), s.reason) for s in skipped]))
    write_text(out_dir / "index.csv", _csv_text(INDEX_COLUMNS, index))
    official = params.split.protocol == "official"
    write_json(
        out_dir / "info.json",
        {
            "dataset": ds.name,
            "sample_rate": sample_rate,
            "clip_samples": n_samples,
            "class_names": list(ds.class_names),
            "protocol": params.split.protocol,
            "test_fold": params.split.test_fold if official else PAPER_TEST_FOLD,
            "n_folds": ds.n_folds if official else params.split.cv_folds,
            "dwt_sample_rate": ds.dwt_sample_rate,
        },
    )
    n_test = sum(a.split == TEST for a in sides)
    return PrepareResult(
        n_rows=n_rows,
        n_original=len(clips),
        n_augmented=n_rows - len(clips),
        n_train=n_rows - n_test,
        n_test=n_test,
        skipped=tuple(skipped),
    )


def _check_test_classes_are_trained(clips: list[Clip], sides: list[Assignment], *, dataset: Dataset) -> None:
    """Refuse a split whose test set holds a class that no training clip has: the model could never predict it,
    and its test clips would count as errors that say nothing about the model."""
    trained = {c.label for c, a in zip(clips, sides) if a.split == TRAIN}
    untrained = sorted({c.label for c, a in zip(clips, sides) if a.split == TEST} - trained)
    if untrained:
        names = [dataset.class_names[label] for label in untrained]
        raise DataError(
            f"{dataset.metadata}: class(es) {names} have test clips but no training clip (every recording of "
            "theirs is in the test fold, or was skipped); choose another split.test_fold or add recordings"
        )


def _index_row(row: int, clip: Clip, side: Assignment, scale: float) -> tuple:
    return (row, clip.clip_id, clip.source_id, side.fold, clip.label, clip.category, float(scale), side.split)


def _csv_text(columns: tuple[str, ...], rows: list[tuple]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def _report_skipped(skipped: list[SkippedFile], *, path: Path) -> None:
    if skipped:
        print(f"skipped {len(skipped)} bad file(s) (listed in {path}):", file=sys.stderr)
        for s in skipped:
            print(f"  {s.reason}", file=sys.stderr)
