"""Training images/s per model at the default input size: the project's loop (advaudio.training.loop.fit,
with the default train params) next to a minimal plain-torch loop on the same model and data, same run.

    python benchmarks/bench_train.py [--models resnet56 vgg16] [--images 384] [--repeats 2]

Prints one row per model and the ratio project/plain (target >= 0.95). Run it with tcmalloc preloaded as
the stages do (advaudio.runtime re-executes this script with it when the system has it).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from tabulate import tabulate

from advaudio.config import Params, resolve_device
from advaudio.features.reader import TensorSplit
from advaudio.models import MODELS, build_model
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.training.loop import fit


def plain_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, lr: float,
               device: str) -> float:
    """Images/s of the textbook loop: Adam, shuffled slices, cross-entropy, no extras."""
    model.to(device).train()
    x, y = x.to(device), y.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.perf_counter()
    order = torch.randperm(len(x), device=device)
    for start in range(0, len(x), batch_size):
        idx = order[start : start + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - t0)


def project_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, params: Params, device: str) -> float:
    """Images/s of :func:`advaudio.training.loop.fit` (one epoch, no validation) on a split held in memory."""
    result = fit(model, train=TensorSplit(x=x, y=y), val=None, config=params.train, seed=0, device=device,
                 epochs=1, progress=False)
    return result.images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS.names())
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    params = Params()
    device = resolve_device(params.device)
    shape = (1, params.spectrogram.height, params.spectrogram.width)
    n_classes = params.synth.n_classes
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, *shape, generator=g)
    y = torch.randint(0, n_classes, (args.images,), generator=g)
    rows = []
    for name in args.models:
        best = {"project": 0.0, "plain": 0.0}
        for _ in range(args.repeats + 1):  # the first round warms up allocators and kernels
            for kind in ("plain", "project"):  # alternate, so background load hits both alike
                torch.manual_seed(0)
                model = build_model(name, n_classes=n_classes, input_shape=shape)
                if kind == "plain":
                    ips = plain_loop(model, x, y, batch_size=params.train.batch_size, lr=params.train.lr,
                                     device=device)
                else:
                    ips = project_loop(model, x, y, params=params, device=device)
                best[kind] = max(best[kind], ips)
        rows.append([name, f"{best['project']:.1f}", f"{best['plain']:.1f}", f"{best['project'] / best['plain']:.2f}"])
        print(tabulate([rows[-1]], tablefmt="plain"), flush=True)
    print(f"\ntraining images/s at {shape[1]}x{shape[2]}, batch {params.train.batch_size}, device {device}, "
          f"threads {torch.get_num_threads()}")
    print(tabulate(rows, headers=["model", "project", "plain torch", "ratio (target >= 0.95)"]))


if __name__ == "__main__":
    reexec_with_tcmalloc()
    main()
