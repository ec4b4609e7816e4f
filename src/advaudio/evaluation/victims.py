"""Victims and targets (docs/PROTOCOL.md "Victims and targets"): stratified by class, seeded, saved and reused."""

from __future__ import annotations

import numpy as np

from advaudio.errors import ConfigError, DataError


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
