"""Crash-safe attack stages: each attack's search state is saved after every rung and picked up on rerun.

An attack stage runs six budget searches that can take hours at the study's sizes. After every rung the state
of the running search (:class:`~advaudio.evaluation.budget.BudgetResult` with ``finished`` False, or True once
the search has ended) is written atomically to ``build/attacks/.resume/<mode>/<attack>.npz``. A rerun of the
stage after a crash or ``kill -9`` loads the finished attacks as they are and continues an unfinished one at its
next rung; because each rung's randomness depends only on the seed and the rung, the results equal an
uninterrupted run's (wall time aside).

The folder is outside every DVC output, so DVC neither deletes it before the rerun nor ever takes it for a
stage output. It is keyed by a fingerprint of everything the searches depend on (the mode, the checkpoint, the
test features, the victims, the attack parameters, the seed and the code of the attacks and the evaluation);
a state saved under another fingerprint is discarded. The stage deletes the folder once its outputs are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from advaudio.evaluation.budget import BudgetResult
from advaudio.io import atomic_path, write_text

RESUME_DIR = Path("build/attacks/.resume")
_ARRAYS = ("adv", "l2", "success", "pool_top1")  # BudgetResult's array fields; saved unless None
_SOURCES = ("attacks", "evaluation", "models")  # packages whose code decides the searches' results


def fingerprint(*, files: Iterable[Path], settings: dict[str, Any], package_dir: Path) -> str:
    """SHA-256 over the contents of ``files``, ``settings`` (as sorted JSON) and the source files of the
    packages in :data:`_SOURCES` under ``package_dir`` (``src/advaudio``)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    sources = sorted(p for pkg in _SOURCES for p in (package_dir / pkg).rglob("*.py"))
    for path in [*sorted(Path(f) for f in files), *sources]:
        digest.update(str(path.name).encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class ResumeStore:
    """The saved search states of one attack stage, valid for one fingerprint.

    Parameters
    ----------
    directory : Path
        ``build/attacks/.resume/<mode>``.
    key : str
        The :func:`fingerprint` of the stage's inputs; states saved under another key are deleted.
    """

    def __init__(self, directory: str | Path, *, key: str) -> None:
        self.directory = Path(directory)
        stamp = self.directory / "fingerprint.txt"
        if self.directory.exists() and (not stamp.is_file() or stamp.read_text().strip() != key):
            shutil.rmtree(self.directory)
        if not stamp.is_file():
            write_text(stamp, key + "\n")

    def load(self, name: str) -> BudgetResult | None:
        """The saved state of attack ``name``, or ``None``."""
        path = self.directory / f"{name}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            scalars = json.loads(str(z["state"]))
            arrays = {k: z[k] for k in _ARRAYS if k in z.files}
        return BudgetResult(**arrays, **scalars)

    def save(self, state: BudgetResult) -> None:
        """Write ``state`` atomically (uncompressed: at the study's sizes compression costs more than disk)."""
        scalars = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name not in _ARRAYS}
        saved = {k: getattr(state, k) for k in _ARRAYS if getattr(state, k) is not None}
        with atomic_path(self.directory / f"{state.name}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, state=np.array(json.dumps(scalars)), **saved)

    def clear(self) -> None:
        """Delete every saved state (the stage's outputs are written)."""
        shutil.rmtree(self.directory, ignore_errors=True)
