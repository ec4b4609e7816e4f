"""Candidate start images for attacks that start from an image of the target class (``starting_pool``).

A pool is a tensor ``(P, ...)`` already in memory, or a :class:`PoolSource`: any object that yields the
pool in batches and fetches given rows (:class:`advaudio.evaluation.pool_source.ReaderPool` adapts a
split reader), so that a pool as large as a test split is never held whole. :class:`StartingPool` asks
the model for the pool's top-1 classes once, keeps only those ``(P,)`` labels and fetches just the images
an attack picks.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class PoolSource(Protocol):
    """A starting pool that is read, not held: ``len`` images, streamed in row order or fetched by row.

    The source chooses its batch size (what fits in memory); :class:`StartingPool` only asks that it be a
    multiple of the query function's forward chunk.
    """

    def __len__(self) -> int:
        """Number of images ``P``."""

    def image_batches(self, *, multiple_of: int, device: torch.device) -> Iterable[torch.Tensor]:
        """Every image once, in row order, as consecutive batches on ``device`` whose sizes, all but the
        last, are multiples of ``multiple_of``."""

    def read(self, rows: np.ndarray, *, device: torch.device) -> torch.Tensor:
        """The images of ``rows`` (int64 indices, in that order, repeats allowed) on ``device``."""


class StartingPool:
    """One classification of a pool of candidate start images, shared by every batch it serves.

    The top-1 classes of the pool are asked of the model once, through the first query function that needs
    them (:meth:`top1`), and reused by every later batch the pool is handed to; the budget search creates
    one pool per search, so every rung reuses them. A tensor pool is classified in one call; a
    :class:`PoolSource` batch by batch, in batches that are multiples of the query function's forward chunk, so the model sees the same forward batches either
    way and the classes (and the samples a counting query function counts) are identical. Only the ``(P,)``
    classes are kept; :meth:`take` fetches the images an attack picks.

    Parameters
    ----------
    images : torch.Tensor or PoolSource
        ``(P, ...)`` candidates inside the model's bounds, or a source of them.
    top1 : torch.Tensor, optional
        ``(P,)`` classes from an earlier classification by the same model (a resumed search): not asked again.

    Raises
    ------
    TypeError
        When ``images`` is neither a tensor nor a :class:`PoolSource`.
    """

    def __init__(self, images: torch.Tensor | PoolSource, *, top1: torch.Tensor | None = None) -> None:
        if not isinstance(images, (torch.Tensor, PoolSource)):
            raise TypeError("a starting pool is a tensor or a PoolSource (len, image_batches, read), not "
                            f"{type(images).__name__}")
        if top1 is not None and tuple(top1.shape) != (len(images),):
            raise ValueError(f"the starting pool's saved classes have shape {tuple(top1.shape)}; expected "
                             f"({len(images)},), one per pool image")
        self._images = images
        self._top1 = top1

    def __len__(self) -> int:
        return len(self._images)

    @property
    def classes(self) -> torch.Tensor | None:
        """The ``(P,)`` top-1 classes once known (asked or given), else ``None``."""
        return self._top1

    def top1(self, classify: Callable[[torch.Tensor], torch.Tensor], device: torch.device, *,
             chunk: int = 1) -> torch.Tensor:
        """``(P,)`` top-1 classes on ``device``, from ``classify`` the first time it is asked.

        Parameters
        ----------
        classify : callable
            Maps images ``(b, ...)`` on ``device`` to their top-1 classes ``(b,)``: a query function,
            counting the samples it is asked about.
        device : torch.device
            Where the images are classified and the classes returned.
        chunk : int
            The forward batch ``classify`` splits its input into; a source's batches are multiples of it.

        Raises
        ------
        ValueError
            When a source yields a number of images other than its ``len``.
        """
        if self._top1 is None:
            if isinstance(self._images, torch.Tensor):
                self._top1 = classify(self._images.to(device))
            else:
                parts = [classify(xb) for xb in self._images.image_batches(multiple_of=chunk, device=device)]
                top1 = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long, device=device)
                if len(top1) != len(self._images):
                    raise ValueError(f"the starting pool's source yielded {len(top1)} images but has "
                                     f"len {len(self._images)}")
                self._top1 = top1
        return self._top1.to(device)

    def take(self, rows: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The images of ``rows`` (``(b,)`` indices into the pool), in that order, on ``device``."""
        if isinstance(self._images, torch.Tensor):
            return self._images[rows.to(self._images.device)].to(device)
        return self._images.read(rows.cpu().numpy().astype(np.int64), device=device)
