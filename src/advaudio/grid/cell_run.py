"""The engine-neutral cell runner: ``python -m advaudio.grid.cell_run --manifest M --index I``.

Runs task ``I`` of the grid's manifest (:mod:`advaudio.grid.manifest`), the same way whatever started it (a
local process, a SLURM array task, a Ray task):

1. clone the baseline commit into the task's work folder, or reuse the folder a preempted run left (its
   ``build/.resume`` states survive, so the stages resume);
2. point DVC at the shared cache (``cache.shared group``; the run-cache lives there too, so a stage computed by
   one job is restored by the others) and, when given, at a DVC remote (then the run-cache travels through it:
   prep tasks ``dvc push --run-cache``, cells ``dvc exp run --pull``);
3. give every thread pool the task's cores (``SLURM_CPUS_PER_TASK`` or ``ADVAUDIO_CPUS``);
4. ``dvc exp run -n <cell name> -S ...`` (a prep task: only up to the shared stage);
5. push the experiment to the git remote and check that its ref arrived with the same commit (``dvc exp push``
   exits 0 when it refuses to push);
6. remove the work folder.

Writes its progress and every command's output to stdout (the executors send it to the task's log).
Exit status: 0 done (or already finished at the remote), 1 the task failed, 2 a bad manifest or index.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from advaudio.errors import DataError
from advaudio.grid.cells import available_cpus, thread_environment
from advaudio.grid.manifest import CELL, PREP, Manifest, Task, read_manifest
from advaudio.grid.refs import experiment_ref, local_experiment, remote_experiments

_GIT_IDENTITY = {"GIT_AUTHOR_NAME": "advaudio grid", "GIT_AUTHOR_EMAIL": "grid@advaudio.invalid",
                 "GIT_COMMITTER_NAME": "advaudio grid", "GIT_COMMITTER_EMAIL": "grid@advaudio.invalid"}


class TaskFailed(RuntimeError):
    """A step of the task failed; the message says which and why."""


def say(message: str) -> None:
    """One progress line, time-stamped, on stdout."""
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] cell_run: {message}", flush=True)


def run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, capture: bool = False) -> str:
    """Run ``cmd`` in ``cwd`` (output to stdout unless ``capture``); return its captured stdout.

    Raises
    ------
    TaskFailed
        If it exits non-zero.
    """
    sys.stdout.flush()
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, check=False,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)
    if proc.returncode != 0:
        detail = f":\n{proc.stdout}" if capture else " (its output is above)"
        raise TaskFailed(f"`{' '.join(cmd)}` exited with status {proc.returncode}{detail}")
    return proc.stdout or ""


def task_environment(manifest: Manifest, cpus: int) -> dict[str, str]:
    """The environment of the task's commands: its threads, the manifest's interpreter first on PATH (the
    stages run ``python``), and a git identity where none is configured (experiments are commits)."""
    env = dict(os.environ)
    env.update(thread_environment(cpus))
    env.update(manifest.extra_env)
    python_bin = str(Path(manifest.python or sys.executable).parent)
    env["PATH"] = os.pathsep.join([python_bin, env.get("PATH", "")])
    configured = subprocess.run(["git", "config", "user.name"], text=True, capture_output=True, check=False)
    if not configured.stdout.strip():
        for key, value in _GIT_IDENTITY.items():
            env.setdefault(key, value)
    return env


def prepare_clone(*, source: str, baseline: str, work: Path, env: dict[str, str]) -> None:
    """Make ``work`` a clone of ``source`` at ``baseline``; a folder left by an interrupted run of the same
    baseline is reused as it is (its ignored ``build/`` keeps the stages' resume state)."""
    if (work / ".git").is_dir():
        head = run(["git", "rev-parse", "HEAD"], cwd=work, env=env, capture=True).strip()
        if head == baseline:
            run(["git", "checkout", "-q", "--", "."], cwd=work, env=env)  # undo the last run's -S edits
            say(f"reusing {work} (a previous run of this task left it; resume state kept)")
            return
        say(f"{work} holds another commit ({head[:12]}); cloning afresh")
    if work.exists():
        shutil.rmtree(work)
    work.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "clone", "-q", "--no-checkout", source, str(work)], cwd=work.parent, env=env)
    run(["git", "checkout", "-q", "--detach", baseline], cwd=work, env=env)


def configure_dvc(*, manifest: Manifest, work: Path, env: dict[str, str]) -> None:
    """Point the clone's DVC at the shared cache (group-writable, the link type chosen) and the DVC remote;
    all in ``.dvc/config.local``, so the baseline's committed config is untouched."""
    dvc = [manifest.python or sys.executable, "-m", "dvc"]
    if manifest.cache_dir:
        run([*dvc, "cache", "dir", "--local", manifest.cache_dir], cwd=work, env=env)
        run([*dvc, "config", "--local", "cache.shared", "group"], cwd=work, env=env)
        run([*dvc, "config", "--local", "core.hardlink_lock", "true"], cwd=work, env=env)  # DVC's advice on NFS
    if manifest.cache_type:
        run([*dvc, "config", "--local", "cache.type", manifest.cache_type], cwd=work, env=env)
    if manifest.dvc_remote:
        run([*dvc, "remote", "add", "--local", "--force", "-d", "grid", manifest.dvc_remote], cwd=work, env=env)


def run_experiment(*, manifest: Manifest, task: Task, work: Path, env: dict[str, str]) -> None:
    """``dvc exp run -n <name> -S ...`` in the clone (a prep task: up to its target stage only)."""
    cmd = [manifest.python or sys.executable, "-m", "dvc", "exp", "run", "-n", task.name]
    for override in task.cell.overrides():
        cmd += ["-S", override]
    if manifest.dvc_remote:
        cmd.append("--pull")
    if task.kind == PREP:
        if not task.target:
            raise TaskFailed(f"prep task {task.name} has no target stage")
        cmd.append(task.target)
    say(f"running {' '.join(cmd[1:])}")
    run(cmd, cwd=work, env=env)


def push_experiment(*, manifest: Manifest, task: Task, work: Path, env: dict[str, str]) -> str:
    """Push the experiment (and, with a DVC remote, its outputs and the run-cache) and verify the remote's ref.

    Returns
    -------
    str
        The experiment's commit id.

    Raises
    ------
    TaskFailed
        If the experiment is missing locally, or the remote's ref is missing or points elsewhere after the push.
    """
    sha = local_experiment(repo=work, baseline=manifest.baseline, name=task.name)
    if sha is None:
        raise TaskFailed(f"dvc exp run made no experiment {task.name} ({experiment_ref(baseline=manifest.baseline, name=task.name)} missing)")
    cmd = [manifest.python or sys.executable, "-m", "dvc", "exp", "push"]
    if manifest.force:
        cmd.append("--force")
    cmd += ["--run-cache", "-r", "grid"] if manifest.dvc_remote else ["--no-cache"]
    run([*cmd, manifest.git_remote, task.name], cwd=work, env=env)
    arrived = remote_experiments(remote=manifest.git_remote, baseline=manifest.baseline, cwd=work).get(task.name)
    if arrived != sha:
        found = f"it points at {arrived}" if arrived else "it is missing"
        raise TaskFailed(f"pushed experiment {task.name} ({sha[:12]}) did not arrive at {manifest.git_remote}: "
                         f"{found} (dvc exp push refuses a diverged experiment of the same name; --force replaces it)")
    return sha


def run_task(manifest: Manifest, task: Task, *, cpus: int) -> None:
    """Run one task from clone to verified push (see the module docstring).

    Raises
    ------
    TaskFailed
        Naming the step that failed; the work folder is kept for a rerun to resume.
    """
    env = task_environment(manifest, cpus)
    if task.kind == CELL and not manifest.force:
        if task.name in remote_experiments(remote=manifest.git_remote, baseline=manifest.baseline):
            say(f"{task.name} is already finished at {manifest.git_remote}; nothing to do")
            return
    work = manifest.work_dir(task)
    say(f"{task.kind} {task.name}: baseline {manifest.baseline[:12]}, {cpus} core(s), work folder {work}")
    prepare_clone(source=manifest.source, baseline=manifest.baseline, work=work, env=env)
    configure_dvc(manifest=manifest, work=work, env=env)
    run_experiment(manifest=manifest, task=task, work=work, env=env)
    if task.kind == PREP and manifest.dvc_remote:  # the cells find the shared stages through the remote
        run([manifest.python or sys.executable, "-m", "dvc", "push", "--run-cache", "-r", "grid"], cwd=work, env=env)
    if task.kind == CELL:
        sha = push_experiment(manifest=manifest, task=task, work=work, env=env)
        say(f"{task.name}: experiment {sha[:12]} is at {manifest.git_remote}")
    if not manifest.keep_work:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advaudio.grid.cell_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="the grid's manifest (JSON)")
    parser.add_argument("--index", type=int, required=True, help="the task's position in the manifest")
    parser.add_argument("--cpus", type=int, default=None,
                        help="cores for this task (default: SLURM_CPUS_PER_TASK, ADVAUDIO_CPUS or the affinity mask)")
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(args.manifest)
    except DataError as exc:
        print(f"cell_run: {exc}", file=sys.stderr, flush=True)
        return 2
    if not 0 <= args.index < len(manifest.tasks):
        print(f"cell_run: --index {args.index} is outside {args.manifest}'s {len(manifest.tasks)} task(s)",
              file=sys.stderr, flush=True)
        return 2
    task = manifest.tasks[args.index]
    try:
        run_task(manifest, task, cpus=args.cpus or available_cpus())
    except (TaskFailed, RuntimeError) as exc:
        say(f"FAILED {task.name}: {exc}; work folder kept: {manifest.work_dir(task)}")
        return 1
    say(f"done {task.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
