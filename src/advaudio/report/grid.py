"""Run a part of the study's grid as DVC experiments and write Tables I-III for it.

Usage (from the repository root, with the pipeline committed; queued experiments see only committed or
staged files)::

    python -m advaudio.report.grid --models resnet56 vgg16 --representations stft dwt --jobs 2 \
        [--dataset esc50 [--dataset-dir data/ESC-50]] [--out reports/grid] [--collect-only]

For each dataset it queues ``dvc exp run --queue -S model=a,b -S representation=x,y`` (plus
``-S dataset=... -S dataset_dir=...`` when a dataset is given), runs the queue with
``dvc exp run --run-all -j N`` (which waits), reads ``dvc exp show --json`` and writes
``<out>/tables.md`` and ``<out>/tables.json``. Stages whose deps and params are the same in two cells
(e.g. the features of one representation) are restored from DVC's run-cache, not recomputed.
Exit status: 0 when every cell has a summary, 1 when some failed or are missing, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from advaudio.config import load_params
from advaudio.errors import ConfigError, DataError
from advaudio.io import write_json, write_text
from advaudio.report import layout
from advaudio.report.collect import GridTables, collect_grid, grid_json, grid_markdown, records_from_exp_show

# Where each dataset's files live by default (the user may pass --dataset-dir instead).
DEFAULT_DATASET_DIRS: dict[str, str] = {
    "synth": "build/synth",
    "esc50": "data/ESC-50",
    "urbansound8k": "data/UrbanSound8K",
}
_QUEUED = re.compile(r"Queued experiment '([^']+)'")


def queue_commands(
    *, models: list[str], representations: list[str], datasets: list[str | None], dataset_dirs: dict[str, str]
) -> list[list[str]]:
    """The ``dvc exp run --queue`` argument lists, one per dataset (``None``: the params.yaml dataset)."""
    commands = []
    for dataset in datasets:
        cmd = ["exp", "run", "--queue", "-S", f"model={','.join(models)}",
               "-S", f"representation={','.join(representations)}"]
        if dataset is not None:
            cmd += ["-S", f"dataset={dataset}", "-S", f"dataset_dir={dataset_dirs[dataset]}"]
        commands.append(cmd)
    return commands


def run_dvc(args: list[str], *, repo: Path, capture: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m dvc <args>`` in ``repo`` with this interpreter's bin folder first on PATH, so that
    the stages' ``python`` is the same environment.

    Raises
    ------
    RuntimeError
        If DVC exits with a non-zero status (its output is included).
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, text=True,
                          capture_output=capture, check=False)
    if proc.returncode != 0:
        detail = f"\n{proc.stdout}\n{proc.stderr}" if capture else ""
        raise RuntimeError(f"`dvc {' '.join(args)}` failed with status {proc.returncode}{detail}")
    return proc


def run_grid(
    *, repo: Path, models: list[str], representations: list[str], datasets: list[str | None],
    dataset_dirs: dict[str, str], jobs: int, collect_only: bool = False,
) -> GridTables:
    """Queue the grid, run it with ``jobs`` workers, and collect the experiments it made.

    With ``collect_only`` nothing runs: every experiment of the current commit in the grid is collected.
    """
    names: set[str] = set()
    if not collect_only:
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, text=True,
                               capture_output=True, check=False).stdout.strip()
        if dirty:
            print("grid: warning: uncommitted changes; queued experiments see only committed or staged files",
                  file=sys.stderr, flush=True)
        for cmd in queue_commands(models=models, representations=representations, datasets=datasets,
                                  dataset_dirs=dataset_dirs):
            out = run_dvc(cmd, repo=repo, capture=True)
            names.update(_QUEUED.findall(out.stdout + out.stderr))
        print(f"grid: queued {len(names)} experiment(s); running with {jobs} job(s)", flush=True)
        run_dvc(["exp", "run", "--run-all", "-j", str(jobs)], repo=repo)
    shown = run_dvc(["exp", "show", "--json"], repo=repo, capture=True)
    try:
        data = json.loads(shown.stdout)
    except json.JSONDecodeError as exc:
        raise DataError(f"`dvc exp show --json` printed invalid JSON ({exc})") from None
    records = [r for r in records_from_exp_show(data) if not names or r.name in names]
    default = load_params(repo / "params.yaml", check_choices=False).dataset
    return collect_grid(
        records=records, datasets=[d if d is not None else default for d in datasets],
        representations=representations, models=models,
    )


def write_outputs(*, grid: GridTables, out_dir: Path) -> None:
    """Write ``tables.md`` and ``tables.json`` under ``out_dir``."""
    write_text(out_dir / "tables.md", grid_markdown(grid))
    write_json(out_dir / "tables.json", grid_json(grid))


def _in_study_order(names: list[str], order: tuple[str, ...]) -> list[str]:
    return sorted(dict.fromkeys(names), key=order.index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advaudio.report.grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=layout.MODELS, default=list(layout.MODELS))
    parser.add_argument("--representations", nargs="+", choices=layout.REPRESENTATIONS,
                        default=list(layout.REPRESENTATIONS))
    parser.add_argument("--dataset", nargs="+", choices=sorted(DEFAULT_DATASET_DIRS), default=None,
                        help="dataset(s); default: the one in params.yaml")
    parser.add_argument("--dataset-dir", default=None, help="folder of the (single) dataset; default per dataset")
    parser.add_argument("--jobs", type=int, default=1, help="parallel experiment workers")
    parser.add_argument("--out", type=Path, default=Path("reports/grid"))
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--collect-only", action="store_true", help="only collect finished experiments")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.dataset_dir is not None and (args.dataset is None or len(args.dataset) != 1):
        parser.error("--dataset-dir needs exactly one --dataset")
    datasets = args.dataset or [None]
    dirs = dict(DEFAULT_DATASET_DIRS)
    if args.dataset_dir is not None:
        dirs[args.dataset[0]] = args.dataset_dir
    try:
        grid = run_grid(
            repo=args.repo, models=_in_study_order(args.models, layout.MODELS),
            representations=_in_study_order(args.representations, layout.REPRESENTATIONS),
            datasets=datasets, dataset_dirs=dirs, jobs=args.jobs, collect_only=args.collect_only,
        )
    except (RuntimeError, ConfigError, DataError) as exc:
        print(f"grid: {exc}", file=sys.stderr)
        return 2
    write_outputs(grid=grid, out_dir=args.repo / args.out)
    print(f"grid: {len(grid.cells)} cell(s) written to {args.repo / args.out}; "
          f"{len(grid.failed)} failed, {len(grid.missing)} missing", flush=True)
    return 0 if not grid.failed and not grid.missing else 1


if __name__ == "__main__":
    sys.exit(main())
