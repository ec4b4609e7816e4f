"""Readers of one split: rows -> model inputs ``(B, 1, H', W)`` float32 in [0, 1], built batch by batch.

Every reader is a map-style :class:`torch.utils.data.Dataset` indexed by a whole batch of rows
(``reader[rows]`` is that batch's raw CPU data), and :meth:`SplitReader.batches` streams it through a
:class:`torch.utils.data.DataLoader` (a :class:`~torch.utils.data.BatchSampler` over the requested rows, pinned
memory on CUDA, optionally one worker process reading ahead) and finishes each batch on the target device.
:class:`ShardSplit` reads the rows from the memory-mapped float16 shards and, after the loader, converts them to
float32 on the device and resizes each block there (:func:`~advaudio.features.resize.resize_batch`), stacking
the blocks top to bottom and clamping to [0, 1]. :class:`TensorSplit` serves rows from a tensor already at the
input size. :meth:`~SplitReader.subset` is a view of some rows; :meth:`~SplitReader.cached` keeps a small
split in memory at the input size so that it is resized once rather than every epoch.

Why this shape (``benchmarks/bench_dataloader.py``; 2 shared CPU cores, no GPU; 1600 clips stored at 1025 x 87 read
at 32 x 32, batch 64; ratio of images/s to the hand-written reader with the prefetch thread that this module had
before): reading one shuffled epoch, the DataLoader in the calling process 1.04-1.18 in two runs (0.90-1.31 in four
runs of the prototype), the hand-written loop without its thread 1.05-1.20, the DataLoader with one or two worker
processes 0.40-0.42 (each float16 batch crosses into shared memory and back, which costs more than reading it; 0.20
at the study's 1025 x 216 -> 768 x 1568), a per-row Dataset with default collation 0.77-0.79. One resnet56 epoch:
DataLoader in process 1.24, one worker 1.07 (the reference's thread competes with training for the two cores). So
the loader reads in the calling process unless ``prefetch`` asks for a worker. For a small split held in memory the
DataLoader costs about 0.5 ms more per epoch than a plain loop (0.6 of its reading speed, 0.93 of the epoch in one
noisy run, where reading is under 0.1 % of the time). No GPU was measured. Batches are byte-identical whichever way
they are read (``tests/test_reader_dataloader.py``).
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from advaudio.errors import ConfigError, DataError
from advaudio.features.resize import resize_batch
from advaudio.features.shards import ShardedBlock

CACHE_BYTES = 1 << 30  # :meth:`SplitReader.cached` keeps a split in memory when its inputs take at most this
CACHE_ENV = "ADVAUDIO_READER_CACHE_MIB"  # overrides CACHE_BYTES (in MiB; 0 = always stream)
# Batches a read-ahead worker holds beyond the one being finished: 1, as the memory plan counts
# (advaudio.plan.project: the batch being read and the one prefetched).
PREFETCH_BATCHES = 1


def cache_limit_bytes() -> int:
    """The largest split :meth:`SplitReader.cached` holds in memory, in bytes.

    ``CACHE_BYTES`` (1 GiB) unless the environment variable ``ADVAUDIO_READER_CACHE_MIB`` gives a number of MiB
    (0 = always stream). The cache only trades memory for speed: batches are the same either way. Setting it to
    0 makes peak RAM independent of the split's size at any size (benchmarks/bench_scale.py measures that path).

    Raises
    ------
    ConfigError
        If the variable is set to anything but a non-negative number.
    """
    raw = os.environ.get(CACHE_ENV, "").strip()
    if not raw:
        return CACHE_BYTES
    try:
        mib = float(raw)
    except ValueError:
        mib = -1.0
    if not mib >= 0:
        raise ConfigError(f"{CACHE_ENV}={raw!r}: expected a number of MiB >= 0 (0 = always stream)")
    return int(mib * (1 << 20))


class SplitReader(Dataset):
    """Rows of one split as model inputs, plus their labels ``y`` (N,) int64, ``fold`` (N,) and ``original``
    (N,) bool (augmentation scale 1.0).

    A map-style :class:`~torch.utils.data.Dataset` whose index is a batch of rows: ``reader[rows]`` is their
    raw CPU data. Subclasses implement ``_gather`` (CPU side; runs in a DataLoader worker when reading ahead)
    and ``_finish`` (on the target device, after the loader).
    """

    def __init__(self, *, y: torch.Tensor, fold: np.ndarray, original: np.ndarray, input_shape: Sequence[int]) -> None:
        self.y, self.fold, self.original = y, fold, original
        self.input_shape = tuple(int(s) for s in input_shape)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, rows: Sequence[int]) -> Any:
        return self._gather(np.asarray(rows, dtype=np.int64), pin=False)

    def _gather(self, rows: np.ndarray, *, pin: bool) -> Any:
        raise NotImplementedError

    def _finish(self, raw: Any, device: torch.device) -> torch.Tensor:
        raise NotImplementedError

    def read(self, rows: np.ndarray, *, device: str | torch.device = "cpu") -> torch.Tensor:
        """Inputs of ``rows`` (in that order): float32 ``(len(rows), 1, H', W)`` in [0, 1] on ``device``."""
        device = torch.device(device)
        return self._finish(self._gather(np.asarray(rows, dtype=np.int64), pin=False), device)

    def batches(self, rows: np.ndarray | None = None, *, batch_size: int, device: str | torch.device = "cpu",
                prefetch: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` on ``device`` for consecutive slices of ``rows`` (default: every row in order).

        The slices go through a :class:`~torch.utils.data.DataLoader` over this dataset (pinned memory on CUDA)
        and each is finished (converted, resized) on ``device`` after it. With ``prefetch`` one worker process
        reads the next batch while the caller works on this one; that is off by default because it was slower
        wherever it was measured (see the module docstring). The batches are the same either way.
        """
        device = torch.device(device)
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        sampler = BatchSampler(rows.tolist(), batch_size=batch_size, drop_last=False)
        ahead = prefetch and len(sampler) > 1
        loader = DataLoader(self, sampler=sampler, batch_size=None, collate_fn=_as_read,
                            pin_memory=device.type == "cuda", num_workers=1 if ahead else 0,
                            prefetch_factor=PREFETCH_BATCHES if ahead else None,
                            # fork maps the shards again in the worker; spawn would pickle them whole
                            multiprocessing_context="fork" if ahead else None,
                            # its own generator: each DataLoader iterator draws a worker seed, which must
                            # not advance torch's global RNG (dropout, attack starts) and change results
                            generator=torch.Generator())
        for chunk, raw in zip(sampler, loader):
            chunk = np.asarray(chunk, dtype=np.int64)
            yield self._finish(raw, device), self._labels(chunk, device)

    def load(self, rows: np.ndarray | None = None, *, device: str | torch.device = "cpu",
             batch_size: int = 256) -> torch.Tensor:
        """All inputs of ``rows`` (default: every row) in one float32 tensor ``(n, 1, H', W)`` on ``device``."""
        parts = [x for x, _ in self.batches(rows, batch_size=batch_size, device=device)]
        return torch.cat(parts) if parts else torch.empty((0, *self.input_shape))

    def subset(self, rows: np.ndarray) -> SplitReader:
        """A reader of ``rows`` of this split only (position i reads row ``rows[i]``)."""
        return _Subset(self, np.asarray(rows, dtype=np.int64))

    def cached(self, *, max_bytes: int | None = None) -> SplitReader:
        """This split held in memory (CPU) at the input size when that takes at most ``max_bytes`` (default
        :func:`cache_limit_bytes`), else ``self``: a small split is then read and resized once instead of once
        per epoch."""
        limit = cache_limit_bytes() if max_bytes is None else max_bytes
        if len(self) * math.prod(self.input_shape) * 4 > limit:
            return self
        return TensorSplit(x=self.load(), y=self.y, fold=self.fold, original=self.original)

    def _labels(self, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        return self.y.index_select(0, torch.from_numpy(rows)).to(device, non_blocking=True)


def _as_read(raw: Any) -> Any:
    """The DataLoader's collate function: ``reader[rows]`` is already a batch."""
    return raw


class _Subset(SplitReader):
    """Rows ``rows`` of ``parent`` (position i is row ``rows[i]``), sharing its data, labels and finishing."""

    def __init__(self, parent: SplitReader, rows: np.ndarray) -> None:
        super().__init__(y=parent.y.index_select(0, torch.from_numpy(rows)), fold=parent.fold[rows],
                         original=parent.original[rows], input_shape=parent.input_shape)
        self.parent, self.rows = parent, rows

    def _gather(self, rows: np.ndarray, *, pin: bool) -> Any:
        return self.parent._gather(self.rows[rows], pin=pin)

    def _finish(self, raw: Any, device: torch.device) -> torch.Tensor:
        return self.parent._finish(raw, device)


class TensorSplit(SplitReader):
    """A split held as one float32 tensor ``x`` (N, 1, H', W) at the input size (CPU)."""

    def __init__(self, *, x: torch.Tensor, y: torch.Tensor, fold: np.ndarray | None = None,
                 original: np.ndarray | None = None) -> None:
        n = len(x)
        super().__init__(y=y, fold=np.zeros(n, np.int64) if fold is None else fold,
                         original=np.ones(n, bool) if original is None else original, input_shape=x.shape[1:])
        self.x = x

    def _gather(self, rows: np.ndarray, *, pin: bool) -> torch.Tensor:
        xb = self.x.index_select(0, torch.from_numpy(rows).to(self.x.device))
        return xb.pin_memory() if pin and xb.device.type == "cpu" else xb

    def _finish(self, raw: torch.Tensor, device: torch.device) -> torch.Tensor:
        return raw.to(device, non_blocking=True)

    def cached(self, *, max_bytes: int | None = None) -> SplitReader:
        return self


class ShardSplit(SplitReader):
    """A split read from float16 shards (:mod:`advaudio.features.shards`), resized per batch.

    Parameters
    ----------
    blocks : list of (ShardedBlock, (rows, columns))
        The split's blocks top to bottom, each with the size it is resized to.
    """

    def __init__(self, *, blocks: list[tuple[ShardedBlock, tuple[int, int]]], y: torch.Tensor, fold: np.ndarray,
                 original: np.ndarray, input_shape: Sequence[int]) -> None:
        super().__init__(y=y, fold=fold, original=original, input_shape=input_shape)
        self.blocks = blocks

    def _gather(self, rows: np.ndarray, *, pin: bool) -> list[torch.Tensor]:
        out = []
        for block, _ in self.blocks:
            raw = torch.from_numpy(block.take(rows))  # (B, h, w) float16
            if raw.numel():
                lo, hi = torch.aminmax(raw)
                if not (lo >= 0 and hi <= 1):  # NaN fails both comparisons
                    raise DataError(f"{block.path_pattern}: rows {rows.tolist()[:8]}... hold values outside "
                                    "[0, 1] or non-finite values; rerun the spectrogram stage")
            out.append(raw.pin_memory() if pin else raw)
        return out

    def _finish(self, raw: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        parts = [resize_batch(r.to(device, non_blocking=True).float(), height=h, width=w)
                 for r, (_, (h, w)) in zip(raw, self.blocks)]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)  # (B, 1, H', W)
        return x.clamp_(0.0, 1.0)
