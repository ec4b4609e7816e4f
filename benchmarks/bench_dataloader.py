"""The hand-written split reader against ``torch.utils.data`` (issue 18 item 5): one shuffled epoch of batches
read from memory-mapped float16 shards and resized after the loader, same run, same rows, same batches.

    python benchmarks/bench_dataloader.py [--clips 1600] [--native 1025 87] [--size 32 32] [--batch 64]
                                          [--repeats 3] [--model resnet56] [--epochs-with-model 1]

Paths, each yielding the same ``(x, y)`` batches (checked byte for byte before timing):

* ``hand-written, prefetch thread`` -- the reader this project had before (reference): a loop over slices of the
  rows, a thread gathering the next batch's rows while this one is resized and consumed (kept here as
  :func:`handwritten_batches`, on the shipped reader's ``_gather`` / ``_finish``);
* ``hand-written, no prefetch`` -- the same loop without the thread;
* ``shipped: DataLoader, in process`` -- :meth:`advaudio.features.reader.SplitReader.batches`: the reader is a
  map-style :class:`torch.utils.data.Dataset` indexed by a whole batch of rows (a
  :class:`torch.utils.data.BatchSampler` over the shuffled order, ``batch_size=None``), ``num_workers=0``, the
  resize after the loader;
* ``shipped: DataLoader, 1 worker`` -- the same with ``prefetch=True`` (one worker process reading ahead);
* ``DataLoader batches, w=2`` -- two worker processes;
* ``DataLoader rows, w=K`` -- the textbook form: ``__getitem__`` per row, default collation into a batch;
* cached (small split in memory at the input size): the hand-written loop over ``TensorSplit`` against the
  shipped DataLoader over the same tensor.

Reading alone is timed best of ``--repeats``; with ``--model`` each streamed path also runs one training epoch
of :func:`advaudio.training.loop.fit` (where a prefetcher's overlap with compute shows). Prints images/s and
the ratio to the hand-written reader.
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tabulate import tabulate
from torch.utils.data import BatchSampler, DataLoader, Dataset

from advaudio.config import Params, resolve_device
from advaudio.features.reader import ShardSplit, SplitReader, TensorSplit
from advaudio.features.store import open_features
from advaudio.models import build_model
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.training.fake_features import write_fake_features
from advaudio.training.loop import fit


def handwritten_batches(split: SplitReader, rows: np.ndarray, *, batch_size: int, device: str | torch.device,
                        prefetch: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The hand-written ``SplitReader.batches`` this project had before the DataLoader (its loop, verbatim)."""
    device = torch.device(device)
    chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    pin = device.type == "cuda"
    if not prefetch or len(chunks) < 2:
        for chunk in chunks:
            yield split._finish(split._gather(chunk, pin=pin), device), split._labels(chunk, device)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="advaudio-prefetch") as pool:
        pending = pool.submit(split._gather, chunks[0], pin=pin)
        for i, chunk in enumerate(chunks):
            raw = pending.result()
            if i + 1 < len(chunks):
                pending = pool.submit(split._gather, chunks[i + 1], pin=pin)
            yield split._finish(raw, device), split._labels(chunk, device)


class BatchRows(Dataset):
    """``dataset[rows]`` is the raw (CPU) batch of ``rows`` of ``split`` (its ``_gather``)."""

    def __init__(self, split: SplitReader) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, rows: list[int]) -> Any:
        return self.split._gather(np.asarray(rows, dtype=np.int64), pin=False)


class OneRow(Dataset):
    """``dataset[i]`` is row ``i`` of ``split`` alone (float16 ``(h, w)`` per block)."""

    def __init__(self, split: SplitReader) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        return [r[0] for r in self.split._gather(np.array([i], dtype=np.int64), pin=False)]


def _identity(batch: Any) -> Any:
    return batch


class LoaderSplit:
    """What ``fit`` needs of a split (``len``, ``y``, ``input_shape``, ``batches``), read through a DataLoader.

    Parameters
    ----------
    split : SplitReader
        The shipped reader whose ``_gather`` / ``_finish`` do the reading and the resize.
    per_row : bool
        Index the dataset row by row (default collation) instead of by whole batches.
    workers : int
        ``num_workers`` of the DataLoader.
    """

    def __init__(self, split: SplitReader, *, per_row: bool, workers: int) -> None:
        self.split, self.per_row, self.workers = split, per_row, workers
        self.y, self.input_shape = split.y, split.input_shape

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, rows: np.ndarray, *, batch_size: int,
                device: str | torch.device = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = torch.device(device)
        sampler = BatchSampler(rows.tolist(), batch_size=batch_size, drop_last=False)
        common = dict(num_workers=self.workers, pin_memory=device.type == "cuda",
                      prefetch_factor=2 if self.workers else None)
        if self.per_row:
            loader = DataLoader(OneRow(self.split), batch_sampler=sampler, **common)
        else:
            loader = DataLoader(BatchRows(self.split), sampler=sampler, batch_size=None, collate_fn=_identity,
                                **common)
        for chunk, raw in zip(sampler, loader):
            if self.per_row:
                raw = [r for r in raw] if isinstance(raw, list) else [raw]
            chunk = np.asarray(chunk, dtype=np.int64)
            yield self.split._finish(raw, device), self.split._labels(chunk, device)


class Reading:
    """``split`` as ``fit`` sees it (``len``, ``y``, ``input_shape``, ``batches``), read by ``how``."""

    def __init__(self, split: SplitReader, how: Callable[..., Iterator]) -> None:
        self.split, self.how, self.y, self.input_shape = split, how, split.y, split.input_shape

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, rows: np.ndarray, **kwargs: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.how(self.split, rows, **kwargs)


def read_epoch(batches: Callable[[np.ndarray], Iterator], order: np.ndarray, device: str) -> float:
    """Seconds to consume every batch of ``batches(order)``."""
    start = time.perf_counter()
    for _ in batches(order):
        pass
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def fit_epoch(data: Any, *, model: str, n_classes: int, params: Params, device: str) -> float:
    """Seconds of one epoch of :func:`advaudio.training.loop.fit` on ``data`` (no validation)."""
    torch.manual_seed(0)
    net = build_model(model, n_classes=n_classes, input_shape=data.input_shape)
    start = time.perf_counter()
    fit(net, train=data, val=None, config=params.train, seed=0, device=device, epochs=1, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def same_batches(a: Iterator, b: Iterator) -> bool:
    """Whether two batch streams hold byte-identical ``(x, y)`` in the same order."""
    a, b = list(a), list(b)
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1600, help="train clips in the fake shards")
    parser.add_argument("--native", type=int, nargs=2, default=(1025, 87), metavar=("ROWS", "FRAMES"))
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="input size (default: params.yaml's spectrogram height and width)")
    parser.add_argument("--batch", type=int, default=None, help="default: params.yaml's train.batch_size")
    parser.add_argument("--workers", type=int, nargs="+", default=(0, 1, 2))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None, help="also time one fit() epoch per streamed path")
    args = parser.parse_args()
    params = Params()
    device = resolve_device(params.device)
    size = tuple(args.size or (params.spectrogram.height, params.spectrogram.width))
    batch = args.batch or params.train.batch_size
    n_classes, n_folds, scales = 10, 5, (0.75, 0.9, 1.15, 1.5)
    # train rows = sources * (n_folds - 1) / n_folds * (1 + len(scales)); pick sources for about --clips
    sources = max(1, round(args.clips * n_folds / ((n_folds - 1) * (1 + len(scales)) * n_classes)))
    order_rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="advaudio-bench-dataloader-") as tmp:
        write_fake_features(tmp, n_classes=n_classes, sources_per_class=sources, n_folds=n_folds, scales=scales,
                            size=size, native_size=tuple(args.native), noise=0.25)
        reader = open_features(tmp).train
        assert isinstance(reader, ShardSplit)
        order = order_rng.permutation(len(reader))
        how = {
            "hand-written, prefetch thread": lambda r, o, **k: handwritten_batches(r, o, prefetch=True, **k),
            "hand-written, no prefetch": lambda r, o, **k: handwritten_batches(r, o, prefetch=False, **k),
            "shipped: DataLoader, in process": lambda r, o, **k: r.batches(o, **k),
            "shipped: DataLoader, 1 worker": lambda r, o, **k: r.batches(o, prefetch=True, **k),
        }
        splits: dict[str, Any] = {name: Reading(reader, h) for name, h in how.items()}
        for w in args.workers:
            if w >= 2:
                splits[f"DataLoader batches, w={w}"] = LoaderSplit(reader, per_row=False, workers=w)
        for w in sorted({0, max(args.workers)}):
            splits[f"DataLoader rows, w={w}"] = LoaderSplit(reader, per_row=True, workers=w)
        streamed = {name: lambda o, d=d: d.batches(o, batch_size=batch, device=device) for name, d in splits.items()}
        cached = reader.cached(max_bytes=1 << 40)
        assert isinstance(cached, TensorSplit)
        in_memory = {
            "cached: hand-written loop": lambda o: handwritten_batches(cached, o, batch_size=batch, device=device,
                                                                       prefetch=False),
            "cached: shipped DataLoader": lambda o: cached.batches(o, batch_size=batch, device=device),
        }
        reference = list(handwritten_batches(reader, order, batch_size=batch, device=device, prefetch=False))
        for name, batches in {**streamed, **in_memory}.items():
            if not same_batches(iter(reference), batches(order)):
                raise SystemExit(f"{name}: batches differ from the hand-written reader's")
        del reference
        seconds = {name: float("inf") for name in {**streamed, **in_memory}}
        for _ in range(args.repeats):  # interleaved, so background load hits every path alike
            for name, batches in {**streamed, **in_memory}.items():
                seconds[name] = min(seconds[name], read_epoch(batches, order, device))
        fit_seconds = {}
        if args.model:
            data = {**{name: splits[name] for name in how},
                    "cached: hand-written loop": Reading(cached, how["hand-written, no prefetch"]),
                    "cached: shipped DataLoader": cached}
            fit_seconds = {name: float("inf") for name in data}
            for _ in range(2):  # the first round warms up allocators and kernels
                for name, d in data.items():
                    fit_seconds[name] = min(fit_seconds[name], fit_epoch(
                        d, model=args.model, n_classes=n_classes, params=params, device=device))
    n = len(order)
    print(f"{n} train clips stored at {args.native[0]}x{args.native[1]} float16 "
          f"({n * args.native[0] * args.native[1] * 2 / 2**20:.0f} MiB), read at {size[0]}x{size[1]}, batch {batch}, "
          f"device {device}, torch threads {torch.get_num_threads()}, best of {args.repeats}")
    ref, ref_cached = seconds["hand-written, prefetch thread"], seconds["cached: hand-written loop"]
    table = [[name, f"{n / s:.0f}", f"{(ref_cached if name.startswith('cached') else ref) / s:.2f}"]
             for name, s in seconds.items()]
    print(tabulate(table, headers=["reading one epoch", "images/s", "ratio to hand-written"]))
    if fit_seconds:
        ref, ref_cached = fit_seconds["hand-written, prefetch thread"], fit_seconds["cached: hand-written loop"]
        table = [[name, f"{n / s:.0f}", f"{(ref_cached if name.startswith('cached') else ref) / s:.2f}"]
                 for name, s in fit_seconds.items()]
        print(tabulate(table, headers=[f"{args.model} fit, one epoch", "images/s", "ratio to hand-written"]))


if __name__ == "__main__":
    reexec_with_tcmalloc()
    main()
