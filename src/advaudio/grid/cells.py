"""Grid cells: what one cell is, its deterministic experiment name, its ``-S`` overrides, and its share of cores.

A cell is one (dataset, representation, model[, seed]) of the study's grid, run under one profile. Its name is
the same on every machine and every submission, so a resubmitted grid finds the cells that already finished at
the git remote (``refs/exps/<baseline>/<name>``) and skips them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

from advaudio.parallel import CPUS_VARIABLE  # process pools never exceed a cell's cores

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Read by numpy/scipy (BLAS, OpenMP), numba and torch when they start: one value caps every thread pool.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class Cell:
    """One cell of the grid.

    ``dataset_dir`` is set only when the grid names a dataset (otherwise params.yaml's pair is kept);
    ``seed`` and ``profile`` only when the grid sets them; ``extra`` holds further ``key=value`` overrides
    that every cell of the grid shares.
    """

    dataset: str
    representation: str
    model: str
    dataset_dir: str | None = None
    seed: int | None = None
    profile: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """The experiment's name: ``<dataset>-<representation>-<model>[-s<seed>][-<profile>][-x<hash>]``."""
        return self._name([self.dataset, self.representation, self.model])

    @property
    def group_name(self) -> str:
        """The name of the cells that differ from this one only in the model or the seed (they share the audio
        and features stages, whose inputs are everything but those two: ``seed`` drives training, ``data_seed``
        the data): :attr:`name` without the model and the seed."""
        return self._name([self.dataset, self.representation], with_seed=False)

    def _name(self, parts: list[str], *, with_seed: bool = True) -> str:
        if with_seed and self.seed is not None:
            parts.append(f"s{self.seed}")
        if self.profile is not None:
            parts.append(self.profile)
        if self.extra:
            parts.append("x" + hashlib.sha256("\n".join(self.extra).encode()).hexdigest()[:8])
        name = "-".join(parts)
        if not _NAME_OK.match(name):
            raise ValueError(f"cell name {name!r} is not a valid experiment name (letters, digits, '.', '_', '-')")
        return name

    def overrides(self) -> list[str]:
        """The ``key=value`` overrides ``dvc exp run -S`` applies for this cell."""
        sets = []
        if self.profile is not None:
            sets.append(f"profile={self.profile}")
        if self.dataset_dir is not None:
            sets += [f"dataset={self.dataset}", f"dataset_dir={self.dataset_dir}"]
        sets += [f"representation={self.representation}", f"model={self.model}"]
        if self.seed is not None:
            sets.append(f"seed={self.seed}")
        return sets + list(self.extra)

    def to_json(self) -> dict:
        """A plain mapping (for the grid's manifest)."""
        return {"dataset": self.dataset, "representation": self.representation, "model": self.model,
                "dataset_dir": self.dataset_dir, "seed": self.seed, "profile": self.profile,
                "extra": list(self.extra)}

    @classmethod
    def from_json(cls, data: dict) -> "Cell":
        """The inverse of :meth:`to_json`."""
        return cls(dataset=data["dataset"], representation=data["representation"], model=data["model"],
                   dataset_dir=data.get("dataset_dir"), seed=data.get("seed"), profile=data.get("profile"),
                   extra=tuple(data.get("extra") or ()))


def grid_cells(
    *,
    datasets: list[tuple[str, str | None]],
    representations: list[str],
    models: list[str],
    seeds: list[int] | None = None,
    profile: str | None = None,
    extra: list[str] | None = None,
) -> list[Cell]:
    """Every cell of the grid, dataset-major, then representation, model and seed.

    Parameters
    ----------
    datasets : list of (name, folder or None)
        ``None`` as folder keeps params.yaml's ``dataset_dir`` (the dataset is then params.yaml's).
    seeds : list of int, optional
        ``None``: params.yaml's seed, not part of the name.
    extra : list of str, optional
        ``key=value`` overrides every cell shares (``--set``).
    """
    seed_list: list[int | None] = list(seeds) if seeds else [None]
    cells = [
        Cell(dataset=d, representation=r, model=m, dataset_dir=folder, seed=s, profile=profile,
             extra=tuple(extra or ()))
        for d, folder in datasets for r in representations for m in models for s in seed_list
    ]
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ValueError("two cells of the grid have the same name; list each model and representation once")
    return cells


def available_cpus() -> int:
    """The cores this process may use: SLURM's allocation when inside a job, else the CPU affinity mask."""
    for var in ("SLURM_CPUS_PER_TASK", CPUS_VARIABLE):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cores_per_job(*, cores: int, jobs: int) -> int:
    """Each of ``jobs`` parallel cells' share of ``cores`` (at least one)."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    return max(1, cores // jobs)


def thread_environment(cpus: int) -> dict[str, str]:
    """Environment variables that hold a cell's thread pools (BLAS, OpenMP, torch, advaudio's process
    pools) to ``cpus`` threads: two cells each running torch's default thread count on the same cores ran
    10-15x slower than one."""
    if cpus < 1:
        raise ValueError(f"cpus must be at least 1, got {cpus}")
    return {**{var: str(cpus) for var in THREAD_VARIABLES}, CPUS_VARIABLE: str(cpus)}
