"""The SLURM executor: the grid's tasks as ``sbatch`` job arrays.

One array runs the prep tasks (one per group of cells that differ only in the model); the cells' array depends on it
(``--dependency=afterok``, ``--kill-on-invalid-dep=yes``: a failed prep cancels its cells instead of leaving
them pending forever). Every array task runs :mod:`advaudio.grid.cell_run` on its index of the manifest and
writes its log to ``<log_dir>/<task name>.log``.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from advaudio.io import write_text


@dataclass(frozen=True)
class ArraySpec:
    """One job array: manifest indices ``first..last`` (inclusive), at most ``max_parallel`` at once."""

    job_name: str
    first: int
    last: int
    names: list[str]  # the task names of first..last, in order (their log files)
    max_parallel: int | None = None
    cpus: int = 1
    gpus: int = 0
    dependency: str | None = None  # a job id the whole array waits for (afterok)

    @property
    def array(self) -> str:
        """The ``--array`` value, e.g. ``0-47%8``."""
        cap = f"%{self.max_parallel}" if self.max_parallel else ""
        return f"{self.first}-{self.last}{cap}"


def render_sbatch(*, spec: ArraySpec, python: str, manifest: Path, log_dir: Path, options: list[str]) -> str:
    """The batch script of ``spec``.

    Parameters
    ----------
    python : str
        The interpreter the tasks run (an environment every node sees).
    options : list of str
        Site options passed through as ``#SBATCH`` lines, e.g. ``--partition=gpu``, ``--time=12:00:00``,
        ``--account=abc``; they come last, so they override the grid's own.
    """
    if len(spec.names) != spec.last - spec.first + 1:
        raise ValueError(f"{len(spec.names)} task names for array {spec.first}-{spec.last}")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={spec.job_name}",
        f"#SBATCH --array={spec.array}",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={spec.cpus}",
        f"#SBATCH --output={log_dir}/slurm-%A_%a.out",
    ]
    if spec.gpus:
        lines.append(f"#SBATCH --gres=gpu:{spec.gpus}")
    lines += [f"#SBATCH {option}" for option in options]
    names = " ".join(shlex.quote(n) for n in spec.names)
    lines += [
        "set -eu",
        f"names=({names})",
        f"log={shlex.quote(str(log_dir))}/${{names[$((SLURM_ARRAY_TASK_ID - {spec.first}))]}}.log",
        'echo "task $SLURM_ARRAY_TASK_ID of job $SLURM_ARRAY_JOB_ID on $(hostname): log $log"',
        'exec >"$log" 2>&1',
        f"exec {shlex.quote(python)} -m advaudio.grid.cell_run --manifest {shlex.quote(str(manifest))} "
        '--index "$SLURM_ARRAY_TASK_ID"',
        "",
    ]
    return "\n".join(lines)


def sbatch_command(*, script: Path, dependency: str | None) -> list[str]:
    """The ``sbatch`` call that submits ``script`` (``--parsable``: it prints the job id)."""
    cmd = ["sbatch", "--parsable"]
    if dependency:
        cmd += [f"--dependency=afterok:{dependency}", "--kill-on-invalid-dep=yes"]
    return [*cmd, str(script)]


def submit_array(*, spec: ArraySpec, python: str, manifest: Path, log_dir: Path, options: list[str],
                 script_dir: Path) -> str:
    """Write ``spec``'s batch script into ``script_dir`` and submit it; return the job id.

    Raises
    ------
    RuntimeError
        If ``sbatch`` is missing or refuses the script (its message included).
    """
    script = script_dir / f"{spec.job_name}.sbatch"
    write_text(script, render_sbatch(spec=spec, python=python, manifest=manifest, log_dir=log_dir, options=options))
    cmd = sbatch_command(script=script, dependency=spec.dependency)
    try:
        proc = subprocess.run(cmd, text=True, capture_output=True, check=False)
    except FileNotFoundError:
        raise RuntimeError("sbatch not found: the slurm executor runs where SLURM's client commands are") from None
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip().split(";")[0]


def wait_for_jobs(job_ids: list[str], *, poll_seconds: float = 2.0, max_poll_seconds: float = 30.0) -> None:
    """Block until none of ``job_ids`` (array jobs included) is pending or running.

    ``squeue`` is polled with a back-off; ``sacct`` is not used (many test and small clusters run without
    accounting). Raises RuntimeError if ``squeue`` fails.
    """
    delay = poll_seconds
    while True:
        proc = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i"], text=True,
                              capture_output=True, check=False)
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            raise RuntimeError(f"squeue failed: {proc.stderr.strip()}")
        if not proc.stdout.strip():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, max_poll_seconds)
