"""Victims and targets (docs/PROTOCOL.md "Victims and targets"): stratified by class, seeded, saved and reused.

The ``victims`` stage draws them once, among the test clips the original model classifies correctly, and
saves ``build/victims/victims.npz`` (``rows``, ``labels``, ``targets``); every attack stage attacks those.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from advaudio.config import Params, resolve_device
from advaudio.errors import ConfigError, DataError
from advaudio.evaluation.memory import attack_batch_size
from advaudio.evaluation.precision import exact_float32
from advaudio.features.reader import SplitReader
from advaudio.features.store import open_split, read_meta
from advaudio.loading import read_npz
from advaudio.models.checkpoint import check_matches_features, load_checkpoint
from advaudio.models.predict import predict_batches

def draw_victims(*, params: Params, features: str | Path, checkpoint: str | Path) -> dict[str, np.ndarray]:
    """Draw ``attack.n_victims`` victims (:func:`select_victims`) among the test clips that the model at
    ``checkpoint`` classifies correctly; warns on stderr when fewer are correct than asked for.

    Returns
    -------
    dict
        ``rows`` (test split rows), ``labels`` and ``targets``, int64 each: what ``victims.npz`` holds.

    Raises
    ------
    ConfigError
        If ``attack.n_victims`` exceeds the test split.
    DataError
        On a checkpoint that does not fit the features, or no correctly classified test clip.
    """
    device = torch.device(resolve_device(params.device))
    meta = read_meta(features)
    model = load_victim(Path(checkpoint), device=device, meta=meta)
    test = open_split(features, "test", meta=meta)
    labels = test.y.numpy()
    # the attack stages' batch size: they classify the test split again, in the same batches, for model_correct
    batch = attack_batch_size(explicit=params.attack.batch_size, model=model, input_shape=meta["input_shape"],
                              device=device)
    predictions = predict_split(model, test, batch_size=batch, device=device)
    n = params.attack.n_victims
    rows, targets = select_victims(labels=labels, predictions=predictions, n_victims=n,
                                   n_classes=len(meta["class_names"]), seed=params.seed)
    if len(rows) < n:
        print(f"victims: WARNING: attack.n_victims = {n}, but only {len(rows)} of the {len(labels)} test clips are "
              f"classified correctly; drawing {len(rows)} (n_victims and n_victims_requested in each "
              f"metrics/attack_<mode>.json)", file=sys.stderr, flush=True)
    return {"rows": rows, "labels": labels[rows].astype(np.int64), "targets": targets}


def select_victims(
    *, labels: np.ndarray, predictions: np.ndarray, n_victims: int, n_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw victims among correctly classified samples, stratified by class, and a wrong target for each.

    Classes take turns (in order 0, 1, ...) giving their next sample from a seeded permutation until
    ``n_victims`` are drawn or no correctly classified sample is left. Targets are drawn uniformly from
    the ``n_classes - 1`` wrong classes with the same generator.

    Parameters
    ----------
    labels, predictions : np.ndarray
        True and predicted classes of the test split, ``(N,)``.
    n_victims : int
        How many to draw (``attack.n_victims``); fewer if fewer are correctly classified, which the caller
        should report (the count of ``rows`` says how many were drawn).
    n_classes : int
        Number of classes (targets range over them).
    seed : int
        Seed of the draw.

    Returns
    -------
    rows : np.ndarray
        Indices into the test split, ``(n,)`` int64, in drawing order.
    targets : np.ndarray
        Target class of each victim, never its label.

    Raises
    ------
    ConfigError
        If ``n_victims`` exceeds the test split itself.
    DataError
        If no test sample is classified correctly.
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise DataError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    if n_victims > len(labels):
        raise ConfigError(f"attack.n_victims = {n_victims} exceeds the test split's {len(labels)} clips (the "
                          f"candidates victims are drawn from); expected at most {len(labels)}")
    rng = np.random.default_rng(seed)
    correct = labels == predictions
    if not correct.any():
        raise DataError("no test sample is classified correctly; there is nothing to attack")
    queues = [list(rng.permutation(np.flatnonzero(correct & (labels == c)))) for c in range(n_classes)]
    rows: list[int] = []
    while len(rows) < n_victims and any(queues):
        for q in queues:
            if q and len(rows) < n_victims:
                rows.append(int(q.pop(0)))
    rows_arr = np.asarray(rows, dtype=np.int64)
    draw = rng.integers(0, n_classes - 1, size=len(rows_arr))
    victim_labels = labels[rows_arr]
    targets = np.where(draw >= victim_labels, draw + 1, draw)
    return rows_arr, targets.astype(np.int64)


def load_victim(path: Path, *, device: torch.device, meta: dict) -> torch.nn.Module:
    """The checkpoint at ``path`` as an attack victim: eval mode, channels_last, weights frozen.

    Raises
    ------
    DataError
        If it is not a usable checkpoint, or was trained on other features than ``meta`` describes.
    """
    model, config = load_checkpoint(path, device=device)
    check_matches_features(config, meta=meta, path=path)
    model = model.to(memory_format=torch.channels_last).eval()
    model.requires_grad_(False)
    return model


def load_victims(path: Path, *, test_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The victims' test rows and targets saved by the victims stage, checked against the test labels.

    Raises
    ------
    DataError
        Naming the file, when it is missing, unreadable or names other clips than the test split's.
    """
    if not path.is_file():
        raise DataError(f"{str(path)!r} not found; run `dvc repro victims` first (it draws the victims)")
    z = read_npz(path, keys=["rows", "labels", "targets"], kind="an advaudio victims file", hint="rerun victims")
    rows, labels, targets = z["rows"], z["labels"], z["targets"]
    if (rows.min(initial=0) < 0 or rows.max(initial=-1) >= len(test_labels)
            or not np.array_equal(test_labels[rows], labels)):
        raise DataError(f"{str(path)!r} does not match the test split's labels; rerun victims")
    return rows.astype(np.int64), targets.astype(np.int64)


def predict_split(model: torch.nn.Module, split: SplitReader, *, batch_size: int, device: torch.device) -> np.ndarray:
    """Top-1 classes of every clip of ``split``, streamed batch by batch in exact float32."""
    with exact_float32():
        logits = predict_batches(model, (xb for xb, _ in split.batches(batch_size=batch_size, device=device)))
    return logits.argmax(dim=1).numpy()
