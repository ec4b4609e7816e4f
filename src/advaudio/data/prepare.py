"""The ``augment`` stage's work: list, split, decode and pitch-shift a dataset into ``build/audio``.

Outputs (docs/ARCHITECTURE.md): ``clips/clips-XXXXX.npy``, float16 shards of the ``(N, L)`` clips
(:mod:`advaudio.data.clip_shards`: originals in listing order, then the pitch-shifted copies of the training
pool, scale by scale), ``index.csv`` (one row per clip row), ``info.json`` (with the shard layout) and
``skipped.csv`` (bad files skipped under ``audio.skip_bad_files``; header only if none).

The clips stream: each is decoded straight into the shards, the training rows are read back from them for the
pitch shift, and no more than one shard is held in memory, so peak memory does not grow with the dataset. The
shards are written into a scratch folder inside the output folder and moved into place once all are there;
the earlier run's outputs are deleted first (``info.json`` first, so an interrupted run leaves a folder that
the reader refuses), and the index, ``skipped.csv`` and ``info.json`` are written last.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


from advaudio.config import Params
from advaudio.data.augment import augment_rows
from advaudio.data.datasets import Clip, Dataset, open_dataset
from advaudio.data.decode import SkippedFile, decode_clips
from advaudio.parallel import worker_pool
from advaudio.data.splits import PAPER_TEST_FOLD, TEST, TRAIN, Assignment, assign_splits, check_no_leakage
from advaudio.data.clip_shards import FOLDER, SHARD_BYTES, ClipWriter, rows_per_shard, shards_nbytes, storage_info
from advaudio.errors import DataError, DiskFullError
from advaudio.io import check_space, no_space, write_json, write_text

INDEX_COLUMNS = ("row", "clip_id", "source_id", "fold", "label", "category", "augmentation", "split")
SKIPPED_COLUMNS = ("path", "reason")
OUTPUTS = ("info.json", "index.csv", "skipped.csv", FOLDER, "clips.npy")  # clips.npy: the unsharded layout's


@dataclass(frozen=True)
class PrepareResult:
    """What :func:`prepare_audio` wrote."""

    n_rows: int
    n_original: int
    n_augmented: int
    n_train: int
    n_test: int
    skipped: tuple[SkippedFile, ...]


def prepare_audio(*, params: Params, out_dir: str | Path, shard_bytes: int = SHARD_BYTES) -> PrepareResult:
    """List ``params.dataset`` under ``params.dataset_dir``, split it, decode it and augment the training
    pool; write the ``clips/`` shards, ``index.csv``, ``info.json`` and ``skipped.csv`` into ``out_dir``.

    Parameters
    ----------
    params : Params
        The validated parameters.
    out_dir : str or Path
        The audio folder; the outputs of an earlier run in it are deleted first.
    shard_bytes : int
        Target size of a shard (:func:`~advaudio.data.clip_shards.rows_per_shard`).

    Raises
    ------
    ConfigError
        Unknown dataset, ``dataset_dir`` not holding that dataset, or a ``split.test_fold`` it lacks.
    DataError
        Malformed metadata, or a bad audio file while ``audio.skip_bad_files`` is false.
    DiskFullError
        Naming ``<out_dir>/clips``, when the shards of every listed clip and its pitch-shifted copies do not fit
        on ``out_dir``'s disk (checked before decoding) or a shard write runs out of space; nothing is left
        half-written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(name=params.dataset, root=params.dataset_dir, params=params)
    assignments = assign_splits(dataset=ds, config=params.split, seed=params.data_seed)
    sample_rate = params.audio.sample_rate
    n_samples = round((params.audio.clip_seconds or ds.clip_seconds) * sample_rate)
    scales = [s for s in params.augment.scales if s != 1.0]

    per_shard = rows_per_shard(clip_samples=n_samples, shard_bytes=shard_bytes)
    for path in [*(out_dir / name for name in OUTPUTS), *out_dir.glob(".clips.*")]:  # .clips.*: a killed run's
        _remove(path)
    listed = len(ds.clips) + sum(a.split == TRAIN for a in assignments) * len(scales)
    need = shards_nbytes(n_rows=listed, clip_samples=n_samples, rows_per_shard=per_shard)
    check_space(out_dir / FOLDER, need=need)

    try:
        with worker_pool(workers=params.augment.workers) as pool, tempfile.TemporaryDirectory(
            prefix=".clips.", dir=out_dir
        ) as scratch:
            writer = ClipWriter(scratch, clip_samples=n_samples, rows_per_shard=per_shard)
            kept, skipped = decode_clips(
                clips=ds.clips,
                sample_rate=sample_rate,
                n_samples=n_samples,
                skip_bad_files=params.audio.skip_bad_files,
                write=writer.append,
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
            index = [_index_row(k, clips[k], sides[k], 1.0) for k in range(len(clips))]
            shifted = augment_rows(read=writer.rows, rows=train_rows, scales=scales, sample_rate=sample_rate,
                                   pool=pool)
            for row, (k, scale, y) in enumerate(shifted, start=len(clips)):
                writer.append(y)
                index.append(_index_row(row, clips[k], sides[k], scale))
            n_rows = writer.close()
            check_no_leakage(source_ids=[r[2] for r in index], splits=[r[7] for r in index])
            os.replace(Path(scratch) / FOLDER, out_dir / FOLDER)
    except DiskFullError:  # named after the output, once the scratch shards are gone
        raise no_space(out_dir / FOLDER, need=need) from None

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
            "storage": storage_info(n_rows=n_rows, rows_per_shard=per_shard),
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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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
