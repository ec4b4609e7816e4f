"""Where finished cells live: DVC experiment refs at a git remote.

DVC stores an experiment named ``NAME`` of baseline commit ``B`` as ``refs/exps/B[:2]/B[2:]/NAME``, locally and,
after ``dvc exp push``, at the remote. ``dvc exp push`` exits 0 even when it refuses to push (a diverged
experiment of the same name: "No experiments to push."), so a pushed cell is verified by reading the remote's
refs, never trusted from the exit code.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def experiment_ref(*, baseline: str, name: str) -> str:
    """The ref of experiment ``name`` of ``baseline`` (a full 40-character commit id)."""
    if len(baseline) != 40:
        raise ValueError(f"baseline must be a full commit id, got {baseline!r}")
    return f"refs/exps/{baseline[:2]}/{baseline[2:]}/{name}"


def remote_experiments(*, remote: str, baseline: str, cwd: str | Path | None = None) -> dict[str, str]:
    """The experiments of ``baseline`` at git ``remote``: name -> commit id.

    Raises
    ------
    RuntimeError
        If ``git ls-remote`` fails (the remote is unreachable or not a repository), with git's message.
    """
    prefix = f"refs/exps/{baseline[:2]}/{baseline[2:]}/"
    proc = subprocess.run(["git", "ls-remote", remote, f"{prefix}*"], cwd=cwd, text=True, capture_output=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git ls-remote {remote}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    found = {}
    for line in proc.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith(prefix):
            found[ref[len(prefix):]] = sha
    return found


def local_experiment(*, repo: str | Path, baseline: str, name: str) -> str | None:
    """The commit id of experiment ``name`` of ``baseline`` in ``repo``, or None when there is none."""
    proc = subprocess.run(["git", "rev-parse", "--verify", "-q", experiment_ref(baseline=baseline, name=name)],
                          cwd=repo, text=True, capture_output=True, check=False)
    return proc.stdout.strip() or None
