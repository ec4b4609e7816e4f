"""The spectrogram stage's logic: audio clips -> scaled 2D representations per split.

Writes ``{train,test}.npy`` (float32 (N, 1, H', W) in [0, 1]), ``{train,test}.csv`` (the index rows of
``index.csv`` for that split, aligned with the arrays; ``row`` keeps the clip's row in ``clips.npy``) and
``meta.json`` into the output folder, each atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from advaudio.config import SpectrogramConfig
from advaudio.errors import DataError
from advaudio.features.inputs import SPLITS, read_audio_inputs, write_index
from advaudio.features.representations import REPRESENTATIONS, n_rows
from advaudio.features.scaling import apply_scaling, fit_scaling
from advaudio.features.workers import feature_pool
from advaudio.io import atomic_path, write_json

CHUNK = 8  # clips per worker task


@dataclass(frozen=True)
class _Task:
    clips_path: str
    rows: tuple[int, ...]
    representation: str
    sample_rate: int
    dwt_sample_rate: int
    config: SpectrogramConfig


@dataclass(frozen=True)
class FeatureResult:
    """What :func:`build_features` wrote: clip counts, the input shape and the scaling constants."""

    n_train: int
    n_test: int
    input_shape: tuple[int, int, int]
    scaling: dict


def _compute_task(task: _Task) -> np.ndarray:
    clips = np.load(task.clips_path, mmap_mode="r")
    represent = REPRESENTATIONS.get(task.representation)
    out = [
        represent(
            y=np.asarray(clips[r], dtype=np.float32),
            sample_rate=task.sample_rate,
            dwt_sample_rate=task.dwt_sample_rate,
            config=task.config,
        )
        for r in task.rows
    ]
    return np.stack(out)  # (n, H', W)


def build_features(
    *,
    audio_dir: str | Path,
    out_dir: str | Path,
    representation: str,
    config: SpectrogramConfig,
    dataset: str | None = None,
) -> FeatureResult:
    """Compute, scale and write the features of both splits.

    Parameters
    ----------
    audio_dir : str or Path
        The augment stage's folder (``clips.npy``, ``index.csv``, ``info.json``).
    out_dir : str or Path
        Where ``{train,test}.npy``, ``{train,test}.csv`` and ``meta.json`` go.
    representation : str
        A name in :data:`~advaudio.features.representations.REPRESENTATIONS`.
    config : SpectrogramConfig
        Sizes, transform settings, percentile and ``workers``.
    dataset : str, optional
        The configured dataset; if given it must match ``info.json`` (else the audio folder is stale).

    Raises
    ------
    ConfigError
        Unknown representation or settings impossible for this audio (e.g. dwt_fmin above Nyquist).
    DataError
        Bad or inconsistent inputs (message names the file), an empty training split, non-finite features.
    """
    REPRESENTATIONS.get(representation)
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    inputs = read_audio_inputs(audio_dir=audio_dir)
    info = inputs.info
    if dataset is not None and info["dataset"] != dataset:
        raise DataError(
            f"{audio_dir / 'info.json'}: dataset {info['dataset']!r} but params say {dataset!r}; rerun augment"
        )
    shape = (1, n_rows(name=representation, config=config), config.width)
    rows = {split: inputs.split_rows(split) for split in SPLITS}
    with atomic_path(out_dir / "train.npy") as train_tmp, atomic_path(out_dir / "test.npy") as test_tmp:
        arrays = {
            split: np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(rows[split]), *shape))
            for split, tmp in zip(SPLITS, (train_tmp, test_tmp))
        }
        with feature_pool(workers=config.workers) as pool:
            for split in SPLITS:
                tasks = [
                    _Task(
                        clips_path=str(audio_dir / "clips.npy"),
                        rows=tuple(int(r) for r in rows[split][i : i + CHUNK]),
                        representation=representation,
                        sample_rate=int(info["sample_rate"]),
                        dwt_sample_rate=int(info["dwt_sample_rate"]),
                        config=config,
                    )
                    for i in range(0, len(rows[split]), CHUNK)
                ]
                done = 0
                bar = tqdm(total=len(rows[split]), desc=f"{representation} {split}", unit="clip", disable=None)
                for block in pool.imap(_compute_task, tasks):
                    arrays[split][done : done + len(block), 0] = block
                    done += len(block)
                    bar.update(len(block))
                bar.close()
        for split in SPLITS:
            if not np.all(np.isfinite(arrays[split])):
                raise DataError(f"{audio_dir / 'clips.npy'}: {split} features hold NaN or inf")
        scaling = fit_scaling(
            features=arrays["train"], spectrogram_rows=config.height, percentile=config.scale_percentile
        )
        for split in SPLITS:
            apply_scaling(features=arrays[split], scaling=scaling)
            arrays[split].flush()
        del arrays
    for split in SPLITS:
        write_index(
            path=out_dir / f"{split}.csv", columns=inputs.columns, rows=[inputs.index[i] for i in rows[split]]
        )
    class_names = list(info["class_names"])
    write_json(
        out_dir / "meta.json",
        {
            "dataset": info["dataset"],
            "representation": representation,
            "class_names": class_names,
            "n_classes": len(class_names),
            "input_shape": list(shape),
            "scaling": scaling,
        },
    )
    return FeatureResult(
        n_train=len(rows["train"]), n_test=len(rows["test"]), input_shape=shape, scaling=scaling
    )
