"""Small fake ``build/features`` folders for tests and benchmarks: each class is a horizontal band at its
own frequency with random onsets plus noise, laid out exactly as the spectrogram stage writes them (one
``spectrogram`` block of float16 shards, :mod:`advaudio.features.shards`)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from advaudio.features.shards import CLIPS_PER_SHARD, SplitWriter, storage_meta
from advaudio.features.store import INDEX_COLUMNS
from advaudio.io import write_json


def _image(rng: np.random.Generator, *, label: int, n_classes: int, size: tuple[int, int], noise: float,
           scale: float) -> np.ndarray:
    h, w = size
    img = rng.normal(0.3, noise, size=(h, w))
    centre = (label + 0.5) * h / n_classes * scale
    rows = np.arange(h)
    band = np.exp(-0.5 * ((rows - centre) / max(h / (3 * n_classes), 0.5)) ** 2)[:, None]
    start = rng.integers(0, w // 2)
    img[:, start : start + w // 2] += 0.6 * band
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def write_fake_features(
    directory: str | Path,
    *,
    n_classes: int = 4,
    sources_per_class: int = 8,
    n_folds: int = 4,
    test_fold: int = 1,
    scales: tuple[float, ...] = (0.9, 1.1),
    size: tuple[int, int] = (16, 16),
    noise: float = 0.1,
    seed: int = 0,
    native_size: tuple[int, int] | None = None,
    clips_per_shard: int = CLIPS_PER_SHARD,
) -> Path:
    """Write the shards, ``{train,test}.csv`` and ``meta.json`` into ``directory``.

    Sources are spread round-robin over ``n_folds`` folds; ``test_fold`` is the test split; the other
    folds' sources get one extra row per augmentation scale (band moved by the scale). Images are stored
    at ``native_size`` (default: ``size``) and resized to ``size`` when read.
    """
    native_size = tuple(native_size or size)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    k = 0
    for label in range(n_classes):
        for s in range(sources_per_class):
            fold = 1 + (k % n_folds)
            k += 1
            split = "test" if fold == test_fold else "train"
            for scale in (1.0, *scales) if split == "train" else (1.0,):
                rows[split].append({"row": len(rows[split]), "clip_id": f"c{label}_{s}", "source_id": f"s{label}_{s}",
                                    "fold": fold, "label": label, "category": f"class{label}",
                                    "augmentation": scale, "split": split})
                images[split].append(_image(rng, label=label, n_classes=n_classes, size=native_size,
                                            noise=noise, scale=scale))
    directory = Path(directory)
    written = {}
    for split in ("train", "test"):
        writer = SplitWriter(directory, split=split, shapes={"spectrogram": native_size},
                             clips_per_shard=clips_per_shard)
        for image in images[split]:
            writer.add({"spectrogram": image.astype(np.float16)})
        written[split] = writer.close()
        with (directory / f"{split}.csv").open("w", newline="") as fh:
            index = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS)
            index.writeheader()
            index.writerows(rows[split])
    write_json(directory / "meta.json", {
        "dataset": "fake", "representation": "stft", "class_names": [f"class{i}" for i in range(n_classes)],
        "n_classes": n_classes, "input_shape": [1, *size],
        "scaling": {"lo": 0.0, "hi": 1.0, "spectrogram_rows": size[0]},
        "storage": storage_meta(blocks={"spectrogram": native_size}, targets={"spectrogram": size}, splits=written,
                                clips_per_shard=clips_per_shard),
    })
    return directory
