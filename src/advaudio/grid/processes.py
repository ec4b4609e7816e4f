"""The local and Ray executors: each task is one :mod:`advaudio.grid.cell_run` process with its log file.

``local`` runs ``jobs`` tasks at a time on this machine and divides its cores between them; ``ray`` runs each
task as a ``@ray.remote`` task holding ``cpus`` CPUs and ``gpus`` GPUs of a Ray cluster (``pip install
'advaudio[ray]'``). Both return each task's exit status; the prep tasks run (and must succeed) before the cells
of their group.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from advaudio.grid.cells import CPUS_VARIABLE


def task_command(*, python: str, manifest: Path, index: int) -> list[str]:
    """The command that runs task ``index`` of ``manifest``."""
    return [python, "-m", "advaudio.grid.cell_run", "--manifest", str(manifest), "--index", str(index)]


def run_task_process(python: str, manifest: str, index: int, log: str, cpus: int) -> int:
    """Run task ``index`` with ``cpus`` cores, its output appended to ``log``; return its exit status."""
    env = dict(os.environ)
    env[CPUS_VARIABLE] = str(cpus)
    env.pop("SLURM_CPUS_PER_TASK", None)  # the task's share, not an enclosing allocation's
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        return subprocess.run(task_command(python=python, manifest=Path(manifest), index=index), env=env,
                              stdout=out, stderr=subprocess.STDOUT, check=False).returncode


def run_stages(run_stage: Callable[[list[tuple[int, Path]]], dict[int, int]],
               stages: list[list[tuple[int, Path]]]) -> dict[int, int]:
    """Run stage after stage with ``run_stage`` (one stage's ``(index, log)`` pairs -> their exit statuses); a
    stage with a failed task ends the run (a failed prep task's cells would recompute the shared stage)."""
    codes: dict[int, int] = {}
    for stage in stages:
        codes.update(run_stage(stage))
        if any(codes[i] != 0 for i, _ in stage):
            break
    return codes


def run_local(*, python: str, manifest: Path, stages: list[list[tuple[int, Path]]], jobs: int,
              cpus: int) -> dict[int, int]:
    """Run each stage's tasks (``(index, log)`` pairs), ``jobs`` at a time with ``cpus`` cores each, a stage
    only after the one before it succeeded; return index -> exit status."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        def run_stage(stage: list[tuple[int, Path]]) -> dict[int, int]:
            futures = {i: pool.submit(run_task_process, python, str(manifest), i, str(log), cpus) for i, log in stage}
            return {i: f.result() for i, f in futures.items()}

        return run_stages(run_stage, stages)


def run_ray(*, python: str, manifest: Path, stages: list[list[tuple[int, Path]]], cpus: int, gpus: float,
            address: str | None = None) -> dict[int, int]:
    """Run each stage's tasks as Ray tasks (``num_cpus=cpus``, ``num_gpus=gpus``), a stage only after the one
    before it succeeded; return index -> exit status.

    Connects to ``address`` (``auto``: a running cluster) or, when None, starts a local Ray.

    Raises
    ------
    RuntimeError
        If Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray executor needs Ray: pip install 'advaudio[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_task_process)

        def run_stage(stage: list[tuple[int, Path]]) -> dict[int, int]:
            refs = {i: remote.remote(python, str(manifest), i, str(log), cpus) for i, log in stage}
            return {i: int(ray.get(ref)) for i, ref in refs.items()}

        return run_stages(run_stage, stages)
    finally:
        if started:
            ray.shutdown()
