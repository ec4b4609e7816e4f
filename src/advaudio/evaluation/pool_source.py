"""A split reader as the source of an attack's starting pool (:class:`~advaudio.attacks.pool.PoolSource`).

The attack stages hand PIA the test split as its pool through :class:`ReaderPool`: the pool is classified
batch by batch and only the start images picked are read, so memory does not grow with the split.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from advaudio.features.reader import SplitReader


class ReaderPool:
    """Every row of ``reader``, in order, as a starting pool read in batches of about ``batch_size``.

    Parameters
    ----------
    reader : SplitReader
        The pool's images (e.g. the test split, :func:`advaudio.features.store.open_split`).
    batch_size : int
        Images per batch, rounded up to the multiple :meth:`image_batches` is asked for.

    Raises
    ------
    ValueError
        On ``batch_size`` < 1.
    """

    def __init__(self, reader: SplitReader, *, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"ReaderPool batch_size = {batch_size!r}; expected >= 1")
        self.reader = reader
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return len(self.reader)

    def image_batches(self, *, multiple_of: int, device: torch.device) -> Iterator[torch.Tensor]:
        """Every image in row order, in batches of ``batch_size`` rounded up to a multiple of ``multiple_of``
        (the last batch may be smaller), read on ``device``."""
        batch = math.ceil(self.batch_size / multiple_of) * multiple_of
        for x, _ in self.reader.batches(batch_size=batch, device=device):
            yield x

    def read(self, rows: np.ndarray, *, device: torch.device) -> torch.Tensor:
        """The images of ``rows``, in that order, on ``device`` (:meth:`SplitReader.read`)."""
        return self.reader.read(rows, device=device)
