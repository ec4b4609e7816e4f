"""Train/test splits that never put one source recording on both sides.

- ``official``: the test split is the dataset's fold ``split.test_fold``; the other folds are the train
  pool and keep their official fold numbers (used for validation / cross-validation).
- ``paper``: the study's protocol. 70/30 holdout grouped by source and stratified by class (seeded); the
  70 % pool is divided into ``split.cv_folds`` folds, again grouped by source and stratified by class.
  Test rows get fold 0 (they belong to no CV fold).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from advaudio.config import SplitConfig
from advaudio.data.datasets import Clip, Dataset
from advaudio.errors import ConfigError, DataError

TRAIN = "train"
TEST = "test"
PAPER_TEST_FOLD = 0


@dataclass(frozen=True)
class Assignment:
    """Where one clip goes: ``split`` is 'train' or 'test'; ``fold`` its (CV) fold."""

    split: str
    fold: int


def assign_splits(*, dataset: Dataset, config: SplitConfig, seed: int) -> list[Assignment]:
    """Assign every clip of ``dataset`` to train or test, in listing order.

    Parameters
    ----------
    dataset : Dataset
        The listing (clips with source ids, official folds and labels).
    config : SplitConfig
        ``protocol``, ``test_fold``, ``holdout`` and ``cv_folds``.
    seed : int
        Seeds the paper protocol's shuffles.

    Raises
    ------
    ConfigError
        ``official`` with a ``test_fold`` outside the dataset's official folds or absent from its listing.
    DataError
        A source whose clips sit in different official folds (the metadata would leak).
    """
    clips = dataset.clips
    if config.protocol == "official":
        if not 1 <= config.test_fold <= dataset.n_folds:
            raise ConfigError(
                f"split.test_fold = {config.test_fold}, but dataset {dataset.name!r} has {dataset.n_folds} "
                f"official folds; expected 1..{dataset.n_folds}"
            )
        if config.test_fold not in dataset.folds:
            raise ConfigError(
                f"split.test_fold = {config.test_fold} is not a fold of dataset {dataset.name!r}; "
                f"its folds are {dataset.folds}"
            )
        out = [Assignment(TEST if c.fold == config.test_fold else TRAIN, c.fold) for c in clips]
        try:
            check_no_leakage(source_ids=[c.source_id for c in clips], splits=[a.split for a in out])
        except DataError as exc:
            raise DataError(f"{dataset.metadata}: official folds split a source: {exc}") from None
        return out
    if dataset.name == "urbansound8k":
        print(
            "warning: split.protocol=paper reshuffles UrbanSound8K across its official folds; its authors "
            "warn this inflates accuracy. Use split.protocol=official for comparable numbers.",
            file=sys.stderr,
            flush=True,
        )
    rng = np.random.default_rng([seed, 0x5B117])
    test_sources = _holdout_sources(clips=clips, fraction=config.holdout, rng=rng)
    pool = [c for c in clips if c.source_id not in test_sources]
    cv_fold = _grouped_folds(clips=pool, n_folds=config.cv_folds, rng=rng)
    return [
        Assignment(TEST, PAPER_TEST_FOLD)
        if c.source_id in test_sources
        else Assignment(TRAIN, cv_fold[c.source_id])
        for c in clips
    ]


def check_no_leakage(*, source_ids: Sequence[str], splits: Sequence[str]) -> None:
    """Check that no source id occurs in both the train and the test split.

    Raises
    ------
    DataError
        Listing (up to five of) the sources found on both sides.
    """
    sides: dict[str, set[str]] = defaultdict(set)
    for source, split in zip(source_ids, splits, strict=True):
        sides[source].add(split)
    both = sorted(s for s, v in sides.items() if len(v) > 1)
    if both:
        raise DataError(f"{len(both)} source(s) in both train and test, e.g. {both[:5]}")


# --- helpers ---------------------------------------------------------------------------------------


def _sources_by_class(clips: Sequence[Clip]) -> dict[int, dict[str, int]]:
    """class -> {source: clip count}; a source counts under the class of most of its clips."""
    counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for c in clips:
        counts[c.source_id][c.label] += 1
    by_class: dict[int, dict[str, int]] = defaultdict(dict)
    for source in sorted(counts):
        label = max(sorted(counts[source]), key=lambda k: counts[source][k])
        by_class[label][source] = sum(counts[source].values())
    return by_class


def _holdout_sources(*, clips: Sequence[Clip], fraction: float, rng: np.random.Generator) -> set[str]:
    test: set[str] = set()
    by_class = _sources_by_class(clips)
    for label in sorted(by_class):
        sources = by_class[label]
        names = sorted(sources)
        order = [names[i] for i in rng.permutation(len(names))]
        target = fraction * sum(sources.values())
        taken = n_taken = 0
        for s in order:
            # Keep at least one source on each side when the class has two or more.
            must_take = n_taken == 0 and len(order) > 1
            leaves_train = len(order) - n_taken >= 2
            closer = abs(taken + sources[s] - target) < abs(taken - target)
            if must_take or (closer and leaves_train):
                test.add(s)
                taken += sources[s]
                n_taken += 1
    return test


def _grouped_folds(*, clips: Sequence[Clip], n_folds: int, rng: np.random.Generator) -> dict[str, int]:
    fold_of: dict[str, int] = {}
    totals = np.zeros(n_folds, dtype=np.int64)
    by_class = _sources_by_class(clips)
    for label in sorted(by_class):
        sources = by_class[label]
        names = sorted(sources)
        order = [names[i] for i in rng.permutation(len(names))]
        order.sort(key=lambda s: -sources[s])  # stable: largest sources first, ties in shuffled order
        per_class = np.zeros(n_folds, dtype=np.int64)
        for s in order:
            # Fewest clips of this class, then fewest clips overall, then lowest fold.
            k = min(range(n_folds), key=lambda f: (per_class[f], totals[f], f))
            fold_of[s] = k + 1
            per_class[k] += sources[s]
            totals[k] += sources[s]
    return fold_of
