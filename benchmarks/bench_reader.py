"""Cost of storing features at native resolution: one training epoch at the default input size from a split
precomputed at the input size, streamed from native float16 shards (resized per batch), and cached (read
and resized once, :meth:`~advaudio.features.reader.SplitReader.cached`), same run, same model and rows.

    python benchmarks/bench_reader.py [--model resnet56] [--native 1025 87] [--repeats 2]

The fake features have the synth default's train split (1600 clips, 1280 trained on) stored at ``--native``
(default: the STFT of a 2 s clip at 22.05 kHz); prints seconds per epoch, the streamed/precomputed ratio,
the one-off cost of the cache and its share of a default training (``train.epochs`` epochs).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from tabulate import tabulate

from advaudio.config import Params, resolve_device
from advaudio.features.reader import TensorSplit
from advaudio.features.store import open_features
from advaudio.models import build_model
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.training.fake_features import write_fake_features
from advaudio.training.loop import fit


def epoch_seconds(data, *, name: str, n_classes: int, params: Params, device: str) -> float:
    """Seconds of one epoch of :func:`advaudio.training.loop.fit` on ``data`` (no validation)."""
    torch.manual_seed(0)
    model = build_model(name, n_classes=n_classes, input_shape=data.input_shape)
    start = time.perf_counter()
    fit(model, train=data, val=None, config=params.train, seed=0, device=device, epochs=1, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def read_seconds(data, *, batch_size: int, device: str) -> float:
    """Seconds to read one epoch of batches of ``data`` in a shuffled order, without a model."""
    order = np.random.default_rng(0).permutation(len(data))
    start = time.perf_counter()
    for x, _ in data.batches(order, batch_size=batch_size, device=device):
        pass
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--native", type=int, nargs=2, default=(1025, 87), metavar=("ROWS", "FRAMES"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    params = Params()
    device = resolve_device(params.device)
    size = (params.spectrogram.height, params.spectrogram.width)
    with tempfile.TemporaryDirectory(prefix="advaudio-bench-reader-") as tmp:
        write_fake_features(tmp, n_classes=params.synth.n_classes, sources_per_class=params.synth.clips_per_class,
                            n_folds=params.synth.n_folds, scales=params.augment.scales, size=size,
                            native_size=tuple(args.native), noise=0.25)
        reader = open_features(tmp).train
        rows = np.flatnonzero(reader.fold != reader.fold.min())  # the pool less the validation fold
        streamed = reader.subset(rows)
        start = time.perf_counter()
        cached = streamed.cached()
        cache_s = time.perf_counter() - start
        precomputed = TensorSplit(x=cached.x.clone(), y=cached.y)
        best = {"precomputed": float("inf"), "streamed": float("inf"), "cached": float("inf")}
        reading = {kind: min(read_seconds(data, batch_size=params.train.batch_size, device=device) for _ in range(5))
                   for kind, data in (("precomputed", precomputed), ("streamed", streamed), ("cached", cached))}
        for _ in range(args.repeats + 1):  # the first round warms up allocators and kernels
            for kind, data in (("precomputed", precomputed), ("streamed", streamed), ("cached", cached)):
                best[kind] = min(best[kind], epoch_seconds(data, name=args.model, n_classes=params.synth.n_classes,
                                                           params=params, device=device))
    epochs = params.train.epochs
    rows_out = [[kind, f"{s:.2f}", f"{s / best['precomputed']:.3f}", f"{reading[kind]:.3f}"]
                for kind, s in best.items()]
    print(f"{args.model}, {len(rows)} training rows stored at {args.native[0]}x{args.native[1]} float16, read at "
          f"{size[0]}x{size[1]}, batch {params.train.batch_size}, device {device}, threads {torch.get_num_threads()}")
    print(tabulate(rows_out, headers=["epoch from", "seconds", "ratio to precomputed", "reading only (s)"]))
    # Reading is the only work that differs between the three, and it is timed alone (best of 5), so these
    # estimates hold even when background load makes whole epochs noisy.
    extra_cached = cache_s + epochs * (reading["cached"] - reading["precomputed"])
    extra_streamed = epochs * (reading["streamed"] - reading["precomputed"])
    total = epochs * best["precomputed"]
    print(f"cache: {cache_s:.2f} s once. Over a {epochs}-epoch training ({total:.0f} s from precomputed inputs): "
          f"cached {100 * extra_cached / total:+.1f} %, streamed every epoch {100 * extra_streamed / total:+.1f} %")


if __name__ == "__main__":
    reexec_with_tcmalloc()
    main()
