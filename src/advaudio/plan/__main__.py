"""Cost planner: project a run's hours, peak RAM, peak device memory and disk before launching it.

    python -m advaudio.plan                                   # this configuration (params.yaml), one cell
    python -m advaudio.plan --profile study --datasets esc50 urbansound8k \\
        --representations stft dwt stft_tonnetz dwt_tonnetz --models resnet56 vgg16 --json plan.json

It measures, on this machine and at the selected profile's sizes, each stage's per-item cost on a few synthetic
items (a pitch shift and a representation of one clip, training steps, input gradients and forward passes of
each model) and multiplies them by the run's sizes (:mod:`advaudio.plan.project`). Attack stages use the
evaluation counts of the last run of the same configuration when ``metrics/attack_<mode>.json`` holds one, else
the ladders in full (an upper bound). Exit status 1 when a cell does not fit the machine.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
from pathlib import Path

import psutil
import torch

from advaudio.config import PROFILES_DIR, ConfigError, load_params, load_profile, merge_overrides, params_from_dict, resolve_device
from advaudio.evaluation.memory import batch_size_for, free_bytes
from advaudio.evaluation.stage_commands import attack_modes
from advaudio.features.representations import n_rows
from advaudio.io import read_json_object, write_json
from advaudio.plan.facts import dataset_facts
from advaudio.plan.measure import clip_costs, model_costs
from advaudio.plan.project import fits, gib, grid_disk_bytes, hours, ladder_calls, measured_calls, project_cell

import yaml


def _params(path: Path, profile: str | None):
    if profile is None:
        return load_params(path)
    raw = yaml.safe_load(path.read_text()) or {}
    raw["profile"] = profile
    return params_from_dict(merge_overrides(raw, load_profile(profile, profiles_dir=path.parent / PROFILES_DIR)))


def _attack_calls(params, *, root: Path, metrics_dir: Path, n_classes: int, n_features: int, same_cell: bool):
    calls = {}
    for mode, options in attack_modes(root=root).items():
        measured = None
        path = metrics_dir / f"attack_{mode}.json"
        if same_cell and path.is_file():
            measured = measured_calls(metrics=read_json_object(path, missing_hint=""), params=params)
        calls[mode] = measured or ladder_calls(params=params, bounded=options["bounded"] == "true",
                                               n_classes=n_classes, n_features=n_features)
    return calls


def _last_epochs(metrics_dir: Path, same_cell: bool) -> int | None:
    path = metrics_dir / "train.json"
    if not (same_cell and path.is_file()):
        return None
    epochs = read_json_object(path, missing_hint="").get("epochs")
    return int(epochs) if isinstance(epochs, (int, float)) else None


def cache_links(repo_root: Path) -> bool:
    """Whether DVC's cache in ``repo_root`` links outputs into the workspace (``cache.type`` lists hardlink or
    symlink before copy), so that an output takes its size once rather than twice. reflink counts as a copy: it
    falls back to one on filesystems without it (ext4). False outside a DVC repository."""
    try:
        from dvc.repo import Repo

        with Repo(str(repo_root)) as repo:
            kinds = repo.config["cache"].get("type") or ["reflink", "copy"]
    except Exception:  # not a DVC repository, or DVC cannot read its config: assume the default (copy)
        return False
    kinds = [k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds)]
    for kind in kinds:
        if kind in ("hardlink", "symlink"):
            return True
        if kind == "copy":
            return False
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", default=None, help="profile to plan for (default: the one params.yaml selects)")
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--representations", nargs="+", default=None)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (default: params' device)")
    parser.add_argument("--metrics-dir", default="metrics", help="the last run's metrics, to calibrate from")
    parser.add_argument("--json", default=None, help="also write the plan as JSON here")
    args = parser.parse_args(argv)
    try:
        params = _params(Path(args.params), args.profile)
    except ConfigError as exc:
        print(f"plan: {exc}", file=sys.stderr)
        return 2
    device = torch.device(resolve_device(args.device or params.device))
    datasets = args.datasets or [params.dataset]
    representations = args.representations or [params.representation]
    models = args.models or [params.model]
    workers = max(1, min(params.augment.workers, psutil.cpu_count() or 1))
    ram, disk = psutil.virtual_memory().total, shutil.disk_usage(".").free
    device_total = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None
    metrics_dir = Path(args.metrics_dir)
    links = cache_links(Path(args.params).resolve().parent)

    cells, rows = {}, []
    for dataset in datasets:
        facts = dataset_facts(params=params, dataset=dataset)
        shared_done: set[str] = set()
        for representation in representations:
            clip = clip_costs(params=params, facts=facts, representation=representation, seed=params.seed)
            n_features = n_rows(name=representation, config=params.spectrogram) * params.spectrogram.width
            for model in models:
                same = (dataset, representation, model) == (params.dataset, params.representation, params.model) \
                    and args.profile in (None, params.profile)
                probe_batch = max(1, min(params.train.for_model(model).batch_size, 64))
                net = model_costs(params=params, model=model, representation=representation,
                                  n_classes=facts.n_classes, device=device, batch_size=1 if n_features > 2e5 else probe_batch)
                batch = params.attack.batch_size or batch_size_for(per_sample=net.backward_bytes, free=free_bytes(device))
                net = type(net)(**{**net.__dict__, "batch_size": batch})
                base_ram = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                plan = project_cell(
                    params=params, model=model, facts=facts, clip=clip, net=net, n_features=n_features,
                    train_epochs=_last_epochs(metrics_dir, same),
                    attack_calls=_attack_calls(params, root=Path(args.params).resolve().parent,
                                               metrics_dir=metrics_dir, n_classes=facts.n_classes,
                                               n_features=n_features, same_cell=same),
                    base_ram_bytes=base_ram, device_is_cuda=device.type == "cuda", workers=workers,
                    cache_links=links,
                )
                for stage in ("synth", "augment", "spectrogram"):  # shared by the cells of a dataset/representation
                    key = stage if stage != "spectrogram" else f"spectrogram/{representation}"
                    if key in shared_done:
                        plan.seconds.pop(stage, None)
                    shared_done.add(key)
                cells[(dataset, representation, model)] = plan
                ok = fits(plan, ram_bytes=ram, device_bytes=device_total, disk_bytes=disk)
                rows.append((dataset, representation, model, plan, ok))
    _print(rows, params=params, device=device)
    total_s = sum(p.total_seconds for p in cells.values())
    grid_disk = grid_disk_bytes(cells)
    print(f"\ngrid of {len(cells)} cell(s): {hours(total_s):.2f} h on this machine ({device}); "
          f"peak RAM {gib(max(p.peak_ram_bytes for p in cells.values())):.1f} GiB of {gib(ram):.0f}, disk "
          f"{gib(grid_disk):.1f} GiB of {gib(disk):.0f} free")
    print("disk counts each output in the workspace and " + (
        "once in DVC's cache, which links it (cache.type)" if links else
        "again in DVC's cache, which copies it; `dvc config cache.type hardlink,symlink` stores it once"))
    if args.json:
        write_json(args.json, {
            "device": str(device), "profile": args.profile or params.profile,
            "cells": [{"dataset": d, "representation": r, "model": m, "seconds": p.seconds,
                       "total_seconds": p.total_seconds, "peak_ram_bytes": p.peak_ram_bytes,
                       "peak_device_bytes": p.peak_device_bytes, "disk_bytes": p.disk_bytes,
                       "calibrated_attacks": p.calibrated_attacks, "fits": ok} for d, r, m, p, ok in rows],
            "total_seconds": total_s, "grid_disk_bytes": grid_disk, "cache_links": links,
        })
    if grid_disk > disk:
        print(f"the grid does not fit this disk: {gib(grid_disk):.1f} GiB needed, {gib(disk):.1f} GiB free")
    return 0 if all(all(ok.values()) for *_, ok in rows) and grid_disk <= disk else 1


def _print(rows, *, params, device) -> None:
    from tabulate import tabulate

    table = []
    for dataset, representation, model, plan, ok in rows:
        stages = ", ".join(f"{k} {hours(v):.2f}" for k, v in plan.seconds.items() if v >= 36)
        table.append([dataset, representation, model, f"{hours(plan.total_seconds):.2f}",
                      f"{gib(plan.peak_ram_bytes):.1f}", f"{gib(plan.peak_device_bytes):.1f}",
                      f"{gib(plan.disk_bytes):.1f}", "measured" if plan.calibrated_attacks else "upper bound",
                      "yes" if all(ok.values()) else "NO: " + ", ".join(k for k, v in ok.items() if not v), stages])
    head = ["dataset", "representation", "model", "hours", "peak RAM GiB", "peak device GiB", "disk GiB",
            "attack evaluations", "fits", "stages over 0.01 h"]
    print(f"plan for profile {params.profile!r} on {device}:")
    print(tabulate(table, head, tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    sys.exit(main())
