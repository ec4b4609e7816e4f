"""The spectrogram stage's logic: audio clips -> scaled native-resolution blocks per split.

Writes float16 shards (:mod:`advaudio.features.shards`: ``<split>/<block>-XXXXX.npy``, each block at its
native resolution, scaled to [0, 1] with training-split constants), ``{train,test}.csv`` (the index rows
of ``index.csv`` for that split, aligned with the shards; ``row`` keeps the clip's row in ``index.csv``)
and, last, ``meta.json``; each file atomically. ``meta.json`` is removed first, so a folder left by an
interrupted run is refused by the reader until a run completes.

Two passes over the training clips keep memory bounded: the first computes only the clips that enter the
percentile estimate (every ``step``-th, :func:`~advaudio.features.scaling.sample_step`) and keeps them;
the second computes the others and writes the shards, reusing the kept ones, so no clip is computed twice.

Crash-safe: the scaling constants (after the first pass) and each finished shard are staged outside the
output (:mod:`advaudio.features.staging`, ``build/.resume/spectrogram/``) and moved into it once every shard is
there. A rerun with the same inputs reuses them: it skips the first pass and computes only the clips of the
shards not staged yet; the outputs equal an uninterrupted run's byte for byte.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from advaudio.config import SpectrogramConfig
from advaudio.data.clip_shards import ClipShards
from advaudio.errors import ConfigError, DataError
from advaudio.features.inputs import SPLITS, AudioInputs, read_audio_inputs, write_index
from advaudio.features.representations import REPRESENTATIONS, n_rows, target_shapes
from advaudio.features.scaling import KEY_PREFIX, fit_block, sample_step, scale_block
from advaudio.features.shards import CLIPS_PER_SHARD, n_shards, shard_bytes, storage_meta
from advaudio.features.staging import FeatureStaging
from advaudio.features.workers import feature_pool
from advaudio.io import check_space, write_json
from advaudio.resume import ResumeFolder

CHUNK = 8  # clips per worker task


@dataclass(frozen=True)
class _Task:
    clips: ClipShards  # read in the worker, a task's rows at a time
    rows: tuple[int, ...]  # rows of index.csv
    blocks: tuple[tuple[str, ...], ...]  # blocks to compute, per row
    representation: str
    sample_rate: int
    dwt_sample_rate: int
    config: SpectrogramConfig


@dataclass(frozen=True)
class FeatureResult:
    """What :func:`build_features` wrote: clip counts, the model input shape and the scaling constants."""

    n_train: int
    n_test: int
    input_shape: tuple[int, int, int]
    scaling: dict


def _compute_task(task: _Task) -> list[dict[str, np.ndarray]]:
    rep = REPRESENTATIONS.get(task.representation)
    out = []
    for y, blocks in zip(task.clips.rows(task.rows), task.blocks):
        out.append({b: rep.compute(b, y=y, sample_rate=task.sample_rate, dwt_sample_rate=task.dwt_sample_rate,
                                   config=task.config) for b in blocks})
    return out


def build_features(
    *,
    audio_dir: str | Path,
    out_dir: str | Path,
    representation: str,
    config: SpectrogramConfig,
    dataset: str | None = None,
    clips_per_shard: int = CLIPS_PER_SHARD,
    resume: ResumeFolder | None = None,
) -> FeatureResult:
    """Compute, scale and write the features of both splits.

    Parameters
    ----------
    audio_dir : str or Path
        The augment stage's folder (``clips/`` shards, ``index.csv``, ``info.json``).
    out_dir : str or Path
        Where the shards, ``{train,test}.csv`` and ``meta.json`` go.
    representation : str
        A name in :data:`~advaudio.features.representations.REPRESENTATIONS`.
    config : SpectrogramConfig
        Sizes, transform settings, percentile and ``workers``.
    dataset : str, optional
        The configured dataset; if given it must match ``info.json`` (else the audio folder is stale).
    clips_per_shard : int
        Clips per shard file (:mod:`advaudio.features.shards`).
    resume : ResumeFolder, optional
        Where finished shards and the scaling constants are staged until every output is written
        (:mod:`advaudio.features.staging`); a rerun after a crash reuses what is staged there. Default: a fresh
        folder ``<out_dir parent>/.staging-<out_dir name>``, emptied first (nothing is resumed).

    Raises
    ------
    ConfigError
        Unknown representation, settings impossible for this audio (e.g. dwt_fmin above Nyquist) or
        ``clips_per_shard < 1``.
    DataError
        Bad or inconsistent inputs (message names the file), an empty training split, non-finite features.
    DiskFullError
        When the shards still to write do not fit beside ``out_dir`` (checked before any is computed, and again
        for each shard file, whose space is reserved before it is written); nothing is left half-written.
    """
    if clips_per_shard < 1:
        raise ConfigError(f"clips_per_shard must be >= 1, got {clips_per_shard}")
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    job = _FeatureJob.open(audio_dir=audio_dir, representation=representation, config=config, dataset=dataset,
                           clips_per_shard=clips_per_shard)
    (out_dir / "meta.json").unlink(missing_ok=True)
    for split in SPLITS:  # an earlier run's shards go now, not when the new ones are published (disk space)
        shutil.rmtree(out_dir / split, ignore_errors=True)
    if resume is None:
        staging_dir = out_dir.parent / f".staging-{out_dir.name}"
        shutil.rmtree(staging_dir, ignore_errors=True)
        resume = ResumeFolder(staging_dir, inputs={}, then="every shard is computed again")
    store = FeatureStaging(resume)
    scaling = store.load_scaling(keys=job.scaling_keys())
    done = {split: store.done_shards(split=split, shapes=job.shapes, n_clips=job.n_clips[split],
                                     clips_per_shard=clips_per_shard) for split in SPLITS}
    if scaling is not None:
        counts = [f"{len(done[split])}/{job.n_shards(split)} {split}" for split in SPLITS]
        print(f"spectrogram: resumes with {' shards and '.join(counts)} shards done (scaling constants saved; "
              f"{store.directory})", flush=True)
    # fail now, not after hours of computing: the shards still to write must fit where they are staged
    check_space(store.directory, need=sum(
        shard_bytes(n_clips=job.n_clips[split], shapes=job.shapes, clips_per_shard=clips_per_shard, skip=done[split])
        for split in SPLITS))
    with feature_pool(workers=config.workers) as pool:
        kept = None  # the sample clips, when the sample pass runs now
        if scaling is None:
            kept, scaling = job.sample_pass(pool)
            store.save_scaling(scaling)
        written = {split: job.write_split(split, pool=pool, store=store, scaling=scaling, done=done[split],
                                          kept=kept if split == "train" else None) for split in SPLITS}
    for split in SPLITS:
        store.publish(out_dir, split=split, blocks=list(job.shapes), n_clips=job.n_clips[split],
                      clips_per_shard=clips_per_shard)
        write_index(path=out_dir / f"{split}.csv", columns=job.inputs.columns,
                    rows=[job.inputs.index[i] for i in job.rows[split]])
    shape = (1, n_rows(name=representation, config=config), config.width)
    class_names = list(job.inputs.info["class_names"])
    write_json(out_dir / "meta.json", {
        "dataset": job.inputs.info["dataset"],
        "representation": representation,
        "class_names": class_names,
        "n_classes": len(class_names),
        "input_shape": list(shape),
        "scaling": scaling,
        "storage": storage_meta(blocks=job.shapes, targets=target_shapes(name=representation, config=config),
                                splits=written, clips_per_shard=clips_per_shard),
    })
    store.clear()  # every output is written: the staged state is no longer needed
    return FeatureResult(n_train=job.n_clips["train"], n_test=job.n_clips["test"], input_shape=shape, scaling=scaling)


@dataclass
class _FeatureJob:
    """One representation of one audio folder: what to compute for which clips, and the steps that do it."""

    inputs: AudioInputs
    clips_path: Path  # the shards' folder, for messages
    representation: str
    config: SpectrogramConfig
    clips_per_shard: int
    sample_rate: int
    dwt_sample_rate: int
    shapes: dict[str, tuple[int, int]]  # block -> native (rows, frames)
    rows: dict[str, np.ndarray]  # split -> rows of index.csv
    n_clips: dict[str, int]

    @classmethod
    def open(cls, *, audio_dir: Path, representation: str, config: SpectrogramConfig, dataset: str | None,
             clips_per_shard: int) -> _FeatureJob:
        """Read and check the audio folder's inputs (see :func:`build_features` for what is refused)."""
        rep = REPRESENTATIONS.get(representation)
        inputs = read_audio_inputs(audio_dir=audio_dir)
        info = inputs.info
        if dataset is not None and info["dataset"] != dataset:
            raise DataError(
                f"{audio_dir / 'info.json'}: dataset {info['dataset']!r} but params say {dataset!r}; rerun augment"
            )
        sample_rate, dwt_sample_rate = int(info["sample_rate"]), int(info["dwt_sample_rate"])
        shapes = rep.native_shapes(n_samples=inputs.clip_samples, sample_rate=sample_rate,
                                   dwt_sample_rate=dwt_sample_rate, config=config)
        rows = {split: inputs.split_rows(split) for split in SPLITS}
        if len(rows["train"]) == 0:
            raise DataError(f"{audio_dir / 'index.csv'}: the training split is empty; cannot fit the scaling")
        return cls(inputs=inputs, clips_path=inputs.clips.folder, representation=representation, config=config,
                   clips_per_shard=clips_per_shard, sample_rate=sample_rate, dwt_sample_rate=dwt_sample_rate,
                   shapes=shapes, rows=rows, n_clips={split: len(rows[split]) for split in SPLITS})

    def n_shards(self, split: str) -> int:
        return n_shards(n_clips=self.n_clips[split], clips_per_shard=self.clips_per_shard)

    def scaling_keys(self) -> list[str]:
        """The keys of the scaling constants, in the order they are saved."""
        return ["spectrogram_rows", *(KEY_PREFIX[name] + end for name in self.shapes for end in ("lo", "hi"))]

    def in_sample(self) -> list[tuple[str, ...]]:
        """Per training clip, the blocks that enter the percentile estimate (every ``step``-th clip's)."""
        n = self.n_clips["train"]
        steps = {name: sample_step(n_clips=n, values_per_clip=int(np.prod(shape)))
                 for name, shape in self.shapes.items()}
        return [tuple(name for name in self.shapes if i % steps[name] == 0) for i in range(n)]

    def sample_pass(self, pool: Any) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
        """Compute the sample clips' blocks and fit the scaling constants; returns the blocks (kept for the
        writing pass, so no clip is computed twice) and the constants."""
        kept = list(self.computed("train", range(self.n_clips["train"]), self.in_sample(), pool,
                                  desc=f"{self.representation} scaling sample"))
        scaling: dict[str, Any] = {"spectrogram_rows": self.config.height}
        for name in self.shapes:
            values = [blocks[name] for blocks in kept if name in blocks]
            lo, hi = fit_block(values=np.concatenate([v.ravel() for v in values]),
                               percentile=self.config.scale_percentile, block=name)
            scaling[KEY_PREFIX[name] + "lo"], scaling[KEY_PREFIX[name] + "hi"] = lo, hi
        return kept, scaling

    def write_split(self, split: str, *, pool: Any, store: FeatureStaging, scaling: dict[str, Any], done: set[int],
                    kept: list[dict[str, np.ndarray]] | None) -> tuple[int, str]:
        """Stage every shard of ``split`` not ``done``, scaled, reusing the ``kept`` sample blocks; returns what
        :meth:`~advaudio.features.shards.SplitWriter.close` returns."""
        n, per = self.n_clips[split], self.clips_per_shard
        if kept is not None:
            wanted = [tuple(name for name in self.shapes if name not in have) for have in self.in_sample()]
        else:
            wanted = [tuple(self.shapes)] * n
        todo = [p for p in range(n) if p // per not in done]
        fresh = self.computed(split, todo, wanted, pool, desc=f"{self.representation} {split}")
        writer = store.writer(split=split, shapes=self.shapes, clips_per_shard=per)
        for index in range(self.n_shards(split)):
            positions = range(index * per, min(n, (index + 1) * per))
            if index in done:
                writer.reuse(n=len(positions))
                continue
            for p in positions:
                blocks = next(fresh)
                if kept is not None:
                    blocks = {**kept[p], **blocks}
                    kept[p] = {}  # free the kept clip once written
                writer.add({name: scale_block(values=blocks[name], lo=scaling[KEY_PREFIX[name] + "lo"],
                                              hi=scaling[KEY_PREFIX[name] + "hi"]) for name in self.shapes})
        if next(fresh, None) is not None:  # also lets the generator close its progress bar
            raise RuntimeError(f"{split}: more clips computed than the shards hold")
        return writer.close()

    def computed(self, split: str, positions: Sequence[int], wanted: list[tuple[str, ...]], pool: Any, *,
                 desc: str) -> Iterator[dict[str, np.ndarray]]:
        """The blocks ``wanted[p]`` of the clips at ``positions`` of ``split``, in order, checked."""
        bar = tqdm(total=len(positions), desc=desc, unit="clip", disable=None)
        where = iter(positions)
        for result in pool.imap(_compute_task, self.tasks(split, positions, wanted)):
            for blocks in result:
                row = self.rows[split][next(where)]
                for name, block in blocks.items():
                    if block.shape != self.shapes[name]:
                        raise DataError(f"{self.clips_path}: row {row}: {name} block of shape "
                                        f"{block.shape}, expected {self.shapes[name]} for this clip length")
                    if not np.all(np.isfinite(block)):
                        raise DataError(f"{self.clips_path}: row {row}: {split} {name} features hold NaN or inf")
                yield blocks
            bar.update(len(result))
        bar.close()

    def tasks(self, split: str, positions: Sequence[int], wanted: list[tuple[str, ...]]) -> Iterator[_Task]:
        """Worker tasks of :data:`CHUNK` clips each."""
        for i in range(0, len(positions), CHUNK):
            chunk = positions[i : i + CHUNK]
            yield _Task(clips=self.inputs.clips, rows=tuple(int(self.rows[split][p]) for p in chunk),
                        blocks=tuple(wanted[p] for p in chunk), representation=self.representation,
                        sample_rate=self.sample_rate, dwt_sample_rate=self.dwt_sample_rate, config=self.config)
