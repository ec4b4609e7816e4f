"""Crash-safe spectrogram stage: finished shards and the scaling constants are staged, then published.

DVC deletes ``build/features`` before it reruns the spectrogram stage, so shards written there do not survive
a crash or ``kill -9``. The stage therefore writes each shard (every block's file, each atomically) into its
resume folder (:class:`advaudio.resume.ResumeFolder`, ``build/.resume/spectrogram/``, no DVC output; deleted
when any input of the stage changed), which holds

- ``scaling.json``: the fitted [0, 1] scaling constants, written once the scaling sample pass is done;
- ``<split>/<block>-XXXXX.npy``: the shards finished so far, named as in the output
  (:func:`advaudio.features.shards.shard_path`).

A shard counts as done when the scaling constants are saved and every block's file of that shard is there
with the dtype and shape it must have and values in [0, 1], as scaled features always are (each file is
written atomically, so a file that is there is whole; one holding NaN was damaged afterwards).
A rerun reuses the constants and the done shards and computes only the clips of the others. A staged file that
does not load (a ``scaling.json`` that is not the constants, which discards the whole folder, or a shard file
that is not the array it must be) is deleted with a one-line message on stderr saying why, and that work is
done again: a bad file never blocks the stage. Once every shard is staged they are moved into the output
(:meth:`FeatureStaging.publish`: ``os.replace``, free on one filesystem), the stage writes its index files and
``meta.json`` last, and then deletes the folder.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from advaudio.errors import DataError
from advaudio.features.shards import STORAGE_DTYPE, SplitWriter, n_shards, shard_path
from advaudio.io import atomic_path, discard, read_json_object, write_json
from advaudio.loading import open_npy
from advaudio.resume import ResumeFolder, stage_inputs

LIBRARIES = ("numpy", "scipy", "librosa", "soxr")  # packages whose versions can change the computed values
_HASH_BLOCK = 1 << 22  # bytes read at a time while hashing and checking shards


def library_versions() -> dict[str, str | None]:
    """The installed versions of :data:`LIBRARIES` (None: not installed): a resume input DVC does not track."""
    return {name: _version(name) for name in LIBRARIES}


# the worker count changes the speed, never a value: a rerun with fewer workers (after running out of memory,
# say) still resumes
IGNORED_PARAMS = ("spectrogram.workers",)


def spectrogram_extra(*, clips_per_shard: int) -> dict[str, Any]:
    """What the staged shards depend on beyond the stage's DVC deps and params (but :data:`IGNORED_PARAMS`):
    the versions of :data:`LIBRARIES` and ``clips_per_shard`` (a command-line setting)."""
    return {"libraries": library_versions(), "clips_per_shard": clips_per_shard}


def spectrogram_inputs(*, clips_per_shard: int, root: str | Path | None = None) -> dict[str, str]:
    """The spectrogram stage's resume inputs (:func:`advaudio.resume.stage_inputs`)."""
    return stage_inputs("spectrogram", root=root, ignore=IGNORED_PARAMS,
                        extra=spectrogram_extra(clips_per_shard=clips_per_shard))


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


class FeatureStaging:
    """The staged shards and scaling constants of one spectrogram run, in a resume folder.

    Parameters
    ----------
    folder : ResumeFolder
        The stage's resume folder (valid for the stage's inputs).
    """

    def __init__(self, folder: ResumeFolder) -> None:
        self.folder = folder
        self.directory = folder.directory

    @property
    def scaling_path(self) -> Path:
        return self.directory / "scaling.json"

    def load_scaling(self, *, keys: list[str]) -> dict[str, Any] | None:
        """The saved scaling constants, or ``None`` when the sample pass has not finished.

        A ``scaling.json`` that is not valid JSON or whose keys are not ``keys`` (in that order) with finite
        numbers discards the folder (every staged shard was scaled with it): deleted, with a one-line message on
        stderr, and ``None`` returned.
        """
        if not self.scaling_path.exists():
            return None
        try:
            scaling = read_json_object(self.scaling_path, missing_hint="written by the spectrogram stage")
        except DataError as exc:
            return self._discard(reason=str(exc))
        if list(scaling) != keys or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                            and np.isfinite(v) for v in scaling.values()):
            return self._discard(reason=f"{self.scaling_path}: {list(scaling)}, expected the numbers {keys}")
        return scaling

    def _discard(self, *, reason: str) -> None:
        self.folder.reset(reason=reason)

    def save_scaling(self, scaling: dict[str, Any]) -> None:
        """Save the fitted constants atomically (JSON floats round-trip exactly)."""
        write_json(self.scaling_path, scaling)

    def done_shards(self, *, split: str, shapes: dict[str, tuple[int, int]], n_clips: int,
                    clips_per_shard: int) -> set[int]:
        """Indices of the shards of ``split`` already staged in full (none until the scaling is saved)."""
        if not self.scaling_path.is_file():
            return set()
        done = set()
        for index in range(n_shards(n_clips=n_clips, clips_per_shard=clips_per_shard)):
            n = min(clips_per_shard, n_clips - index * clips_per_shard)
            paths = {shard_path(self.directory, split=split, block=name, index=index): (n, *shape)
                     for name, shape in shapes.items()}
            for path, shape in paths.items():
                problem = _problem(path, shape, values=True) if path.exists() else None
                if problem:
                    discard(path, reason=problem, then="the shard is computed again")
            if all(path.exists() for path in paths):
                done.add(index)
        return done

    def writer(self, *, split: str, shapes: dict[str, tuple[int, int]], clips_per_shard: int) -> StagedSplitWriter:
        """A :class:`StagedSplitWriter` of ``split`` into this folder."""
        return StagedSplitWriter(self.directory, split=split, shapes=shapes, clips_per_shard=clips_per_shard)

    def publish(self, out_dir: str | Path, *, split: str, blocks: list[str], n_clips: int,
                clips_per_shard: int) -> None:
        """Move every shard of ``split`` into ``out_dir/<split>/`` (emptied first), copying across filesystems.

        Raises
        ------
        DataError
            Naming the shard, when one is not staged.
        """
        target = Path(out_dir) / split
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for index in range(n_shards(n_clips=n_clips, clips_per_shard=clips_per_shard)):
            for name in blocks:
                source = shard_path(self.directory, split=split, block=name, index=index)
                if not source.is_file():
                    raise DataError(f"{source}: not staged; rerun the spectrogram stage")
                _move(source, shard_path(out_dir, split=split, block=name, index=index))

    def clear(self) -> None:
        """Delete the folder (the stage's outputs are written)."""
        self.folder.clear()


def _problem(path: Path, shape: tuple[int, ...], *, values: bool = False) -> str | None:
    """What keeps ``path`` from being a staged float16 .npy array of ``shape`` (None: nothing); with ``values``
    also its values, which scaled features hold in [0, 1] (this reads the whole file, a few clips at a time)."""
    try:
        array = open_npy(path, kind=f"a staged {STORAGE_DTYPE} shard", hint="staged by the spectrogram stage")
    except DataError as exc:
        return str(exc)
    if array.dtype != np.dtype(STORAGE_DTYPE) or array.shape != shape:
        return f"{path}: {array.dtype} {array.shape}, expected {STORAGE_DTYPE} {shape}"
    step = max(1, _HASH_BLOCK // max(1, array[0].nbytes)) if len(array) else 1
    for start in range(0, len(array) if values else 0, step):
        clips = np.asarray(array[start : start + step])
        inside = ((clips >= 0) & (clips <= 1)).all(axis=(1, 2))  # False for NaN too
        if not inside.all():
            return f"{path}: clip {start + int(np.flatnonzero(~inside)[0])} holds NaN or values outside [0, 1]"
    return None


def _move(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with atomic_path(target, need=source.stat().st_size) as tmp:
            shutil.copyfile(source, tmp)
        source.unlink()


class StagedSplitWriter(SplitWriter):
    """Writes the shards of one split into the staging folder, keeping the shards already there.

    The caller goes through the shards in order: :meth:`reuse` takes a done shard as staged, :meth:`add` collects
    the clips of the others (each full shard is written atomically, every block's file). :meth:`close` returns
    what :class:`advaudio.features.shards.SplitWriter` returns for the same clips: the clip count and the
    running SHA-256 over every shard's bytes in order (reused shards are hashed from their files).

    Parameters
    ----------
    directory : str or Path
        The staging folder; shards go to ``<directory>/<split>/``.
    split : str
        ``train`` or ``test``.
    shapes : dict
        Block name -> native (rows, frames); every clip must match.
    clips_per_shard : int
        Clips per shard file.
    """

    def __init__(self, directory: str | Path, *, split: str, shapes: dict[str, tuple[int, int]],
                 clips_per_shard: int) -> None:
        # not SplitWriter.__init__: that empties the split's folder, which holds the shards to keep
        self.directory, self.split, self.shapes = Path(directory), split, dict(shapes)
        self.clips_per_shard = clips_per_shard
        (self.directory / split).mkdir(parents=True, exist_ok=True)
        self._pending: dict[str, list[np.ndarray]] = {name: [] for name in self.shapes}
        self._written = 0
        self._hash = hashlib.sha256()

    def reuse(self, *, n: int) -> None:
        """Take the next shard, of ``n`` clips, as it is staged (between shards only).

        Raises
        ------
        DataError
            Naming the shard, when a block's file is missing or does not hold ``n`` clips of its shape.
        """
        if self._pending[next(iter(self.shapes))]:
            raise ValueError(f"{self.split}: reuse() in the middle of shard {self._written // self.clips_per_shard}")
        index = self._written // self.clips_per_shard
        for name, shape in self.shapes.items():
            path = shard_path(self.directory, split=self.split, block=name, index=index)
            problem = _problem(path, (n, *shape)) if path.exists() else f"{path}: not staged"
            if problem:
                raise DataError(problem)
            array = open_npy(path, kind=f"a staged {STORAGE_DTYPE} shard", hint="staged by the spectrogram stage")
            step = max(1, _HASH_BLOCK // max(1, array[0].nbytes))
            for start in range(0, n, step):  # the bytes SplitWriter hashes, a few clips at a time
                self._hash.update(np.ascontiguousarray(array[start : start + step]).data)
            del array
        self._written += n
