"""The grid's manifest: everything a job needs to run its task, written once by the submitter.

Every executor (local processes, a SLURM job array, Ray tasks) runs the same command for task ``i``:
``python -m advaudio.grid.cell_run --manifest <file> --index i``. The manifest holds the baseline commit, where
to clone it from, the git remote experiments are pushed to, the shared DVC cache, and the tasks: ``prep`` tasks
(one per group of cells that differ only in the model: the shared stages, computed once, restored by the cells
from the run-cache)
or ``cell`` tasks (one experiment each).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from advaudio.errors import DataError
from advaudio.grid.cells import Cell
from advaudio.io import write_json

PREP = "prep"
CELL = "cell"


@dataclass(frozen=True)
class Task:
    """One job of the grid: ``kind`` ``prep`` (run up to ``target``, push nothing) or ``cell`` (a whole
    experiment, pushed)."""

    kind: str
    cell: Cell
    target: str | None = None  # prep: the last shared stage

    @property
    def name(self) -> str:
        """The experiment's name (prep tasks: ``prep-`` and the cell's :attr:`~Cell.group_name`)."""
        return f"prep-{self.cell.group_name}" if self.kind == PREP else self.cell.name


@dataclass(frozen=True)
class Manifest:
    """What every task of one submission shares, and its tasks (see the module docstring)."""

    baseline: str
    source: str  # a git URL or path holding ``baseline``
    git_remote: str  # where finished experiments are pushed
    cache_dir: str | None  # the DVC cache every clone shares (its run-cache included); None: each its own
    work_root: str  # per-task work folders (kept after a failure, so a rerun resumes)
    log_dir: str
    tasks: list[Task]
    cache_type: str | None = None  # DVC's cache.type, e.g. "symlink" on a shared filesystem
    dvc_remote: str | None = None  # a DVC remote URL: `dvc exp run --pull`, `dvc exp push --run-cache`
    force: bool = False  # replace experiments that already exist at the remote
    keep_work: bool = False
    python: str = ""  # the interpreter the jobs run (a shared environment)
    extra_env: dict[str, str] = field(default_factory=dict)

    def work_dir(self, task: Task) -> Path:
        """The task's work folder (a clone of ``baseline``)."""
        return Path(self.work_root) / task.name

    def log_path(self, task: Task) -> Path:
        """The task's log file."""
        return Path(self.log_dir) / f"{task.name}.log"


def write_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write ``manifest`` as JSON (atomically)."""
    data = asdict(manifest)
    data["tasks"] = [{"kind": t.kind, "target": t.target, "cell": t.cell.to_json()} for t in manifest.tasks]
    write_json(path, data)


def read_manifest(path: str | Path) -> Manifest:
    """Read a manifest written by :func:`write_manifest`.

    Raises
    ------
    DataError
        If the file is missing, not JSON, or lacks a field (naming the file and the field).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the grid manifest ({exc})") from None
    try:
        tasks = [Task(kind=t["kind"], target=t.get("target"), cell=Cell.from_json(t["cell"])) for t in data["tasks"]]
        data["tasks"] = tasks
        return Manifest(**data)
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a grid manifest ({exc})") from None
