"""Run a part of the study's grid, one DVC experiment per cell, and write Tables I-III for it.

Usage (from the repository root, with the pipeline committed: every cell runs a clone of HEAD)::

    python -m advaudio.report.grid --models resnet56 vgg16 --representations stft dwt \
        [--executor local|slurm|ray] [--jobs N] [--profile smoke] [--seeds 0 1 2] \
        [--dataset esc50 [--dataset-dir data/ESC-50]] [--out reports/grid] [--collect-only] \
        [--transfer-mode original_bounded|...|none]

Each cell (dataset, representation, model[, seed]) is one experiment with a deterministic name
(``synth-stft-resnet56-smoke``). Its task clones HEAD into a work folder, points DVC at the shared cache, runs
``dvc exp run -n <name> -S ...`` and pushes the experiment to the git remote (default: this repository), where
the collector finds it (:mod:`advaudio.grid.cell_run`). Cells already at the remote are skipped, so a
resubmission runs only what is missing; ``--force`` recomputes. A prep task per group of cells that differ only
in the model computes the shared stages (audio, features) once; the cells restore them from DVC's run-cache.

Executors: ``local`` (``--jobs`` tasks at once on this machine, its cores divided between them), ``slurm`` (one
``sbatch`` job array for the prep tasks and one for the cells, ``--dependency=afterok``; ``--wait`` blocks and
collects, otherwise collect later with ``--collect-only``), ``ray`` (``@ray.remote`` tasks; ``pip install
'advaudio[ray]'``). Writes ``<out>/tables.md`` and ``<out>/tables.json``, then the transfer matrices of each
(dataset, representation, seed) with two models or more (:mod:`advaudio.report.transfer`): ``<out>/transfer.md``,
``<out>/transfer.json`` and a heat map per group, from the adversarials of ``attack@<--transfer-mode>``.
Exit status: 0 when every cell has a summary (or a SLURM submission without --wait went in), 1 when some failed
or are missing (each failed cell is listed with its log) or a group's transfer matrix could not be computed, 2 on
a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from advaudio.config import load_params, resolve_device
from advaudio.errors import ConfigError, DataError
from advaudio.grid.cells import Cell, available_cpus, cores_per_job, grid_cells
from advaudio.grid.manifest import CELL
from advaudio.grid.refs import remote_experiments
from advaudio.grid.submit import EXECUTORS, GRID_DIR, Placement, Resources, Submission, baseline_commit, \
    default_cache_dir, submit_grid
from advaudio.io import write_json, write_text
from advaudio.report import layout
from advaudio.report.collect import GridTables, collect_grid, grid_json, grid_markdown, records_from_exp_show
from advaudio.report.exp_files import DvcStore
from advaudio.report.transfer import DEFAULT_MODE, JSON_NAME, MARKDOWN_NAME, choose_mode, transfer_report, \
    write_transfer

# Where each dataset's files live by default (the user may pass --dataset-dir instead).
DEFAULT_DATASET_DIRS: dict[str, str] = {
    "synth": "build/synth",
    "esc50": "data/ESC-50",
    "urbansound8k": "data/UrbanSound8K",
}


def run_dvc(args: list[str], *, repo: Path, capture: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m dvc <args>`` in ``repo`` with this interpreter's bin folder first on PATH.

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


def same_repository(remote: str, repo: Path) -> bool:
    """Whether git ``remote`` is ``repo`` itself (then its experiments need no pull)."""
    return Path(remote).expanduser().resolve() == repo.resolve() if "://" not in remote else False


def collect_cells(*, repo: Path, cells: list[Cell], git_remote: str, baseline: str, dvc_remote: bool = False,
                  datasets: list[str], representations: list[str], models: list[str]) -> GridTables:
    """Bring the cells' experiments from ``git_remote`` (``dvc exp pull``) and collect Tables I-III from
    ``dvc exp show --json``; only these cells' experiments of ``baseline`` count."""
    names = {c.name for c in cells}
    present = sorted(names & set(remote_experiments(remote=git_remote, baseline=baseline, cwd=repo)))
    if present and not same_repository(git_remote, repo):
        run_dvc(["exp", "pull", *([] if dvc_remote else ["--no-cache"]), git_remote, *present], repo=repo,
                capture=True)
    shown = run_dvc(["exp", "show", "--json", "--rev", baseline], repo=repo, capture=True)
    try:
        data = json.loads(shown.stdout)
    except json.JSONDecodeError as exc:
        raise DataError(f"`dvc exp show --json` printed invalid JSON ({exc})") from None
    records = [r for r in records_from_exp_show(data) if r.name in names and r.baseline == baseline]
    return collect_grid(records=records, datasets=datasets, representations=representations, models=models)


def list_failures(grid: GridTables, submission: Submission) -> None:
    """Move the cells this submission ran but that are not in the tables from ``missing`` to ``failed``,
    each with its log; print them."""
    if submission.manifest is None:
        return
    logs = {t.cell.name: submission.manifest.log_path(t) for t in submission.manifest.tasks if t.kind == CELL}
    ran = {(c.dataset, c.representation, c.model): c.name for c in submission.pending}
    for key in list(grid.missing):
        if key in ran:
            grid.missing.remove(key)
            grid.failed[key] = [f"{ran[key]} (log: {logs[ran[key]]})"]
    for key, entries in grid.failed.items():
        print(f"grid: FAILED {'/'.join(key)}: {'; '.join(entries)}", file=sys.stderr, flush=True)


def write_outputs(*, grid: GridTables, out_dir: Path) -> None:
    """Write ``tables.md`` and ``tables.json`` under ``out_dir``."""
    write_text(out_dir / "tables.md", grid_markdown(grid))
    write_json(out_dir / "tables.json", grid_json(grid))


def _in_study_order(names: list[str], order: tuple[str, ...]) -> list[str]:
    return sorted(dict.fromkeys(names), key=order.index)


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--help`` documents every option)."""
    parser = argparse.ArgumentParser(prog="python -m advaudio.report.grid", description=__doc__.split("\n\n")[0],
                                     epilog="Site options for SLURM: --sbatch=--partition=gpu --sbatch=--time=12:00:00 "
                                            "(repeat; written as #SBATCH lines). README: 'Running the grid on a SLURM "
                                            "cluster'.")
    cells = parser.add_argument_group("cells")
    cells.add_argument("--models", nargs="+", choices=layout.MODELS, default=list(layout.MODELS))
    cells.add_argument("--representations", nargs="+", choices=layout.REPRESENTATIONS,
                       default=list(layout.REPRESENTATIONS))
    cells.add_argument("--dataset", nargs="+", choices=sorted(DEFAULT_DATASET_DIRS), default=None,
                       help="dataset(s); default: the one in params.yaml")
    cells.add_argument("--dataset-dir", default=None, help="folder of the (single) dataset; default per dataset")
    cells.add_argument("--seeds", nargs="+", type=int, default=None,
                       help="one experiment per seed (default: params.yaml's seed)")
    cells.add_argument("--profile", default=None, help="e.g. smoke (a quick end-to-end check) or study")
    cells.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                       help="an override every cell gets (dvc exp run -S); repeat for more")
    run = parser.add_argument_group("running")
    run.add_argument("--executor", choices=EXECUTORS, default="local",
                     help="local: processes on this machine; slurm: sbatch job arrays; ray: Ray tasks")
    run.add_argument("--jobs", type=int, default=None,
                     help="local/ray: tasks at once (local divides the cores between them; default 1); "
                          "slurm: at most N array tasks at once (--array=...%%N; default no cap)")
    run.add_argument("--cpus-per-task", type=int, default=None,
                     help="slurm/ray: cores per task (default 1); local: the cores divided by --jobs")
    run.add_argument("--gpus-per-task", type=float, default=0, help="slurm (--gres=gpu:N) and ray (num_gpus)")
    run.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                     help="slurm: a site option written as an #SBATCH line, e.g. --sbatch=--partition=gpu")
    run.add_argument("--wait", action="store_true",
                     help="slurm: wait for the jobs and collect (default: submit and exit; then --collect-only)")
    run.add_argument("--ray-address", default=None, help="ray: a running cluster (auto) instead of a local Ray")
    run.add_argument("--force", action="store_true", help="recompute cells already finished at the git remote")
    run.add_argument("--shared-stage", default="spectrogram",
                     help="the last stage the cells that differ only in the model share, computed once per "
                          "group by a prep task ('none': no prep tasks)")
    where = parser.add_argument_group("where results go")
    where.add_argument("--git-remote", default=None,
                       help="git remote the experiments are pushed to (default: this repository)")
    where.add_argument("--cache-dir", default=None,
                       help="DVC cache every task shares (default: this repository's, or with --dvc-remote each "
                            "task's own; on a cluster a shared filesystem)")
    where.add_argument("--cache-type", default=None, help="DVC cache.type for the tasks' clones, e.g. symlink")
    where.add_argument("--dvc-remote", default=None,
                       help="a DVC remote: tasks pull inputs (--pull) and push outputs and the run-cache")
    where.add_argument("--work-root", type=Path, default=None,
                       help=f"the tasks' work folders (default {GRID_DIR}/<commit>/work; kept after a failure)")
    where.add_argument("--keep-work", action="store_true", help="keep work folders after success too")
    where.add_argument("--out", type=Path, default=Path("reports/grid"))
    where.add_argument("--repo", type=Path, default=Path("."))
    where.add_argument("--collect-only", action="store_true", help="only collect finished experiments")
    where.add_argument("--baseline", default=None, metavar="COMMIT",
                       help="run or collect the cells of this commit (default: HEAD), e.g. after a commit that "
                            "changed only documentation; finished cells are found per baseline commit")
    transfer = parser.add_argument_group("transfer matrices")
    transfer.add_argument("--transfer-mode", default=None, metavar="MODE",
                          help=f"the attack@<MODE> stage whose adversarials transfer.md/json evaluate on the other "
                               f"models of their (dataset, representation, seed) (default: {DEFAULT_MODE}, the "
                               f"study's bounded threat model; 'none': no transfer matrices)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < (0 if args.executor == "slurm" else 1):
        parser.error("--jobs must be at least 1")
    if args.dataset_dir is not None and (args.dataset is None or len(args.dataset) != 1):
        parser.error("--dataset-dir needs exactly one --dataset")
    if any("=" not in e for e in args.extra):
        parser.error("--set takes KEY=VALUE")
    repo = args.repo.resolve()
    try:
        params = load_params(repo / "params.yaml", check_choices=False)
        default_dataset = params.dataset
        transfer_mode = choose_mode(args.transfer_mode, repo=repo)  # refused before any cell runs
        if args.dataset is None:
            datasets: list[tuple[str, str | None]] = [(default_dataset, None)]
        else:
            datasets = [(d, args.dataset_dir or DEFAULT_DATASET_DIRS[d]) for d in args.dataset]
        models = _in_study_order(args.models, layout.MODELS)
        representations = _in_study_order(args.representations, layout.REPRESENTATIONS)
        cells = grid_cells(datasets=datasets, representations=representations, models=models, seeds=args.seeds,
                           profile=args.profile, extra=args.extra)
        git_remote = args.git_remote or str(repo)
        submission = None
        if args.collect_only:
            baseline = baseline_commit(repo, args.baseline or "HEAD")
        else:
            submission = _submit(args, repo=repo, cells=cells, git_remote=git_remote)
            baseline = submission.baseline
            if args.executor == "slurm" and not args.wait:
                if submission.job_ids:
                    print(f"grid: submitted SLURM job(s) {', '.join(submission.job_ids)}; logs in "
                          f"{submission.manifest.log_dir}; collect with --collect-only when they finish", flush=True)
                    return 0
        grid = collect_cells(repo=repo, cells=cells, git_remote=git_remote, baseline=baseline,
                             dvc_remote=args.dvc_remote is not None, datasets=[d for d, _ in datasets],
                             representations=representations, models=models)
    except (RuntimeError, ConfigError, DataError, ValueError) as exc:
        print(f"grid: {exc}", file=sys.stderr)
        return 2
    if submission is not None:
        list_failures(grid, submission)
    write_outputs(grid=grid, out_dir=repo / args.out)
    print(f"grid: {len(grid.cells)} cell(s) written to {repo / args.out}; "
          f"{len(grid.failed)} failed, {len(grid.missing)} missing", flush=True)
    transfer_ok = True
    if transfer_mode is not None:
        store = DvcStore(repo=repo, cache_dir=args.cache_dir, dvc_remote=args.dvc_remote)
        transfer_ok = write_transfer_matrices(grid=grid, store=store, mode=transfer_mode, out_dir=repo / args.out,
                                              device=params.device)
    return 0 if not grid.failed and not grid.missing and transfer_ok else 1


def write_transfer_matrices(*, grid: GridTables, store: DvcStore, mode: str, out_dir: Path, device: str) -> bool:
    """Compute and write the transfer matrices (:mod:`advaudio.report.transfer`) on ``device`` (params.yaml's
    ``device``); print each group that failed. Returns whether none did. When none can be written, an earlier
    run's transfer.md/json are removed."""
    try:
        report = transfer_report(grid=grid, store=store, mode=mode, device=torch.device(resolve_device(device)),
                                 work_dir=store.repo / GRID_DIR)
        write_transfer(report, out_dir=out_dir)
    except (ConfigError, DataError) as exc:
        for name in (JSON_NAME, MARKDOWN_NAME):
            (out_dir / name).unlink(missing_ok=True)
        print(f"grid: transfer matrices not written: {exc}", file=sys.stderr, flush=True)
        return False
    for (d, r, s), error in report.failed:
        print(f"grid: transfer FAILED {d}/{r}/seed {s}: {error}", file=sys.stderr, flush=True)
    print(f"grid: transfer matrices of {len(report.groups)} group(s) (attack@{mode}) written to {out_dir}", flush=True)
    return not report.failed


def _submit(args: argparse.Namespace, *, repo: Path, cells: list[Cell], git_remote: str) -> Submission:
    jobs = args.jobs if args.jobs is not None else (0 if args.executor == "slurm" else 1)
    cpus = args.cpus_per_task or (cores_per_job(cores=available_cpus(), jobs=jobs) if args.executor == "local" else 1)
    placement = Placement(
        git_remote=git_remote, source=str(repo),
        cache_dir=args.cache_dir or (None if args.dvc_remote else default_cache_dir(repo)),
        grid_dir=repo / GRID_DIR, work_root=args.work_root.resolve() if args.work_root else None,
        cache_type=args.cache_type, dvc_remote=args.dvc_remote, keep_work=args.keep_work,
    )
    resources = Resources(jobs=jobs, cpus=cpus, gpus=args.gpus_per_task, sbatch_options=args.sbatch,
                          ray_address=args.ray_address)
    shared = None if args.shared_stage in ("", "none") else args.shared_stage
    submission = submit_grid(repo=repo, cells=cells, executor=args.executor, placement=placement,
                             resources=resources, shared_stage=shared, force=args.force, wait=args.wait,
                             baseline=args.baseline)
    print(f"grid: {len(cells)} cell(s) at baseline {submission.baseline[:12]}: {len(submission.finished)} already "
          f"finished at {git_remote} (skipped), {len(submission.pending)} to run with the {args.executor} executor"
          + (f", {cpus} core(s) each" if submission.pending else ""), flush=True)
    return submission


if __name__ == "__main__":
    sys.exit(main())
