"""The validation-fold split of the training pool (docs/ARCHITECTURE.md "Splits")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from advaudio.errors import ConfigError
from advaudio.features.reader import SplitReader

if TYPE_CHECKING:
    from advaudio.config import Params
    from advaudio.features.store import FeatureReaders


def pool_folds(split: SplitReader) -> list[int]:
    """Sorted fold numbers present in the training pool."""
    return sorted(int(f) for f in np.unique(split.fold))


def train_val_rows(split: SplitReader, *, val_fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices for training and validation (docs/ARCHITECTURE.md "Splits").

    Validation = the original (un-augmented) rows of ``val_fold``; training = every row of the other folds,
    so no row of the validation fold, augmented or not, is trained on.

    Raises
    ------
    ConfigError
        If ``val_fold`` is not a fold of the training pool, or it is the pool's only fold.
    """
    folds = pool_folds(split)
    if val_fold not in folds:
        raise ConfigError(f"train.val_fold = {val_fold} is not a fold of the training pool; choose from {folds}")
    if len(folds) < 2:
        raise ConfigError(f"the training pool has only fold {folds}; need >= 2 folds for a validation fold")
    in_fold = split.fold == val_fold
    return np.flatnonzero(~in_fold), np.flatnonzero(in_fold & split.original)


def validation_folds(features: FeatureReaders, *, params: Params) -> list[int]:
    """The validation fold(s): every pool fold when cross-validating, else ``train.val_fold``
    (0 = the pool's lowest fold)."""
    folds = pool_folds(features.train)
    if params.train.cross_validate:
        return folds
    return [params.train.val_fold or folds[0]]
