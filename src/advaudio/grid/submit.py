"""Submit the grid's unfinished cells to an executor (local processes, SLURM job arrays or Ray tasks).

Every submission starts from the repository's current commit (the baseline): cells whose experiment already
exists at the git remote are skipped (``force`` recomputes them), the rest become tasks of one manifest
(:mod:`advaudio.grid.manifest`), a prep task per group of cells that differ only in the model first when a shared
stage is named.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from advaudio.grid import processes, slurm
from advaudio.grid.cells import Cell
from advaudio.grid.manifest import CELL, PREP, Manifest, Task, write_manifest
from advaudio.grid.refs import remote_experiments

EXECUTORS = ("local", "slurm", "ray")
GRID_DIR = "build/grid"  # manifests, batch scripts, logs and work folders, per baseline commit


@dataclass(frozen=True)
class Placement:
    """Where a submission's tasks run and what they share (see :class:`advaudio.grid.manifest.Manifest`)."""

    git_remote: str
    cache_dir: str | None
    source: str
    grid_dir: Path
    work_root: Path | None = None
    cache_type: str | None = None
    dvc_remote: str | None = None
    keep_work: bool = False


@dataclass(frozen=True)
class Resources:
    """What each task gets, and how many run at once."""

    jobs: int = 1  # local: tasks at once; slurm: the array's %N cap (0: no cap)
    cpus: int = 1
    gpus: float = 0
    sbatch_options: list[str] = field(default_factory=list)
    ray_address: str | None = None


@dataclass
class Submission:
    """What a submission did: cells skipped as finished, tasks, SLURM job ids, exit statuses (when waited for)."""

    baseline: str
    finished: list[Cell]
    pending: list[Cell]
    manifest: Manifest | None = None
    manifest_path: Path | None = None
    job_ids: list[str] = field(default_factory=list)
    codes: dict[int, int] = field(default_factory=dict)


def git_output(args: list[str], *, repo: Path) -> str:
    """``git <args>`` in ``repo``; its stdout stripped. Raises RuntimeError with git's message on failure."""
    proc = subprocess.run(["git", *args], cwd=repo, text=True, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def baseline_commit(repo: Path, rev: str | None = None) -> str:
    """The full commit id of ``rev`` (default: HEAD). For HEAD, warns on stderr when tracked files have
    uncommitted changes (the cells clone the commit, so they do not see them).

    Raises
    ------
    RuntimeError
        If ``rev`` names no commit of ``repo``.
    """
    if rev is None and git_output(["status", "--porcelain", "--untracked-files=no"], repo=repo):
        print("grid: warning: uncommitted changes; the cells run the committed files of HEAD only",
              file=sys.stderr, flush=True)
    return git_output(["rev-parse", "--verify", f"{rev or 'HEAD'}^{{commit}}"], repo=repo)


def default_cache_dir(repo: Path) -> str:
    """The repository's DVC cache folder (absolute), shared by every task."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "cache", "dir"], cwd=repo, text=True, capture_output=True,
                          check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"`dvc cache dir` in {repo} failed: {proc.stderr.strip()}")
    return str((repo / proc.stdout.strip().splitlines()[-1]).resolve())


def split_finished(cells: list[Cell], *, finished_names: set[str], force: bool) -> tuple[list[Cell], list[Cell]]:
    """``(finished, pending)``: with ``force`` every cell is pending."""
    if force:
        return [], list(cells)
    return [c for c in cells if c.name in finished_names], [c for c in cells if c.name not in finished_names]


def build_tasks(pending: list[Cell], *, shared_stage: str | None) -> list[Task]:
    """One prep task per group of ``pending`` (cells that differ only in the model or the seed,
    :attr:`Cell.group_name`; when ``shared_stage`` is set), then one task per cell."""
    tasks: list[Task] = []
    if shared_stage:
        groups: dict[str, Cell] = {}
        for cell in pending:
            groups.setdefault(cell.group_name, cell)
        tasks += [Task(kind=PREP, cell=c, target=shared_stage) for c in groups.values()]
    return tasks + [Task(kind=CELL, cell=c) for c in pending]


def submit_grid(*, repo: Path, cells: list[Cell], executor: str, placement: Placement, resources: Resources,
                shared_stage: str | None, force: bool = False, wait: bool = True,
                baseline: str | None = None) -> Submission:
    """Run (or, for SLURM without ``wait``, submit) the grid's unfinished cells of ``baseline`` (default HEAD).

    Raises
    ------
    RuntimeError
        If git, DVC, ``sbatch`` or Ray fail before the tasks start.
    ValueError
        If ``executor`` is unknown.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of {list(EXECUTORS)}")
    repo = repo.resolve()
    baseline = baseline_commit(repo, baseline)
    finished_names = set(remote_experiments(remote=placement.git_remote, baseline=baseline, cwd=repo))
    finished, pending = split_finished(cells, finished_names=finished_names, force=force)
    submission = Submission(baseline=baseline, finished=finished, pending=pending)
    if not pending:
        return submission
    run_dir = placement.grid_dir / baseline[:12]
    manifest = Manifest(
        baseline=baseline, source=placement.source, git_remote=placement.git_remote,
        cache_dir=placement.cache_dir, work_root=str(placement.work_root or run_dir / "work"),
        log_dir=str(run_dir / "logs"), tasks=build_tasks(pending, shared_stage=shared_stage),
        cache_type=placement.cache_type, dvc_remote=placement.dvc_remote, force=force,
        keep_work=placement.keep_work, python=sys.executable,
    )
    path = run_dir / f"manifest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_manifest(manifest, path)
    Path(manifest.log_dir).mkdir(parents=True, exist_ok=True)
    submission.manifest, submission.manifest_path = manifest, path
    stages = _stages(manifest)
    if executor == "slurm":
        submission.job_ids = _submit_slurm(manifest, path, stages, resources, run_dir)
        if wait:
            slurm.wait_for_jobs(submission.job_ids)
    elif executor == "local":
        submission.codes = processes.run_local(python=sys.executable, manifest=path, stages=stages,
                                               jobs=resources.jobs, cpus=resources.cpus)
    else:
        submission.codes = processes.run_ray(python=sys.executable, manifest=path, stages=stages, cpus=resources.cpus,
                                             gpus=resources.gpus, address=resources.ray_address)
    return submission


def _stages(manifest: Manifest) -> list[list[tuple[int, Path]]]:
    """The manifest's task indices with their logs: prep tasks, then cells (empty stages left out)."""
    stages = [[(i, manifest.log_path(t)) for i, t in enumerate(manifest.tasks) if t.kind == kind]
              for kind in (PREP, CELL)]
    return [s for s in stages if s]


def _submit_slurm(manifest: Manifest, path: Path, stages: list[list[tuple[int, Path]]], resources: Resources,
                  run_dir: Path) -> list[str]:
    job_ids: list[str] = []
    dependency = None
    for stage in stages:
        first, last = stage[0][0], stage[-1][0]
        kind = manifest.tasks[first].kind
        spec = slurm.ArraySpec(
            job_name=f"advaudio-{kind}", first=first, last=last, names=[manifest.tasks[i].name for i, _ in stage],
            max_parallel=resources.jobs or None, cpus=resources.cpus, gpus=int(resources.gpus) if kind == CELL else 0,
            dependency=dependency,
        )
        dependency = slurm.submit_array(spec=spec, python=manifest.python, manifest=path, log_dir=Path(manifest.log_dir),
                                        options=resources.sbatch_options, script_dir=run_dir)
        job_ids.append(dependency)
    return job_ids
