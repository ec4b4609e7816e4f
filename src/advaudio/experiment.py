"""``python -m advaudio.experiment -S key=value ...`` (``make exp ARGS="..."``): ``dvc exp run`` in the workspace that
puts the params files back, byte for byte, when the run fails.

``dvc exp run -S`` writes its overrides into the workspace's ``params.yaml`` before the first stage runs and
leaves them there when a stage fails, so a refused value (``model=vgg61``) or a crash stays in the file and
the next plain ``dvc repro`` or commit picks it up. Worse, DVC (3.67, through scmrepo's pygit2 backend) resets
the git index after a failed run with the committed blob but the edited file's timestamps: when the edited
file has the committed size (``batch_size: 64`` -> ``batch_size: 32``), ``git status`` can report it clean.
Writing the saved bytes back also gives the file a new timestamp, so git looks at it again.

A successful run is left as DVC leaves it: the workspace holds the experiment (params, ``dvc.lock``,
outputs), so ``dvc metrics diff`` compares it with ``HEAD``. ``dvc exp run --temp`` leaves the workspace
alone even on success, but runs in a copy without the crash-resume state under ``build/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from advaudio.config import DEFAULT_PARAMS, PROFILES_DIR


def params_files(root: Path) -> list[Path]:
    """The files ``dvc exp run -S`` may write: ``params.yaml`` and the profiles (``-S profiles/study.yaml:...``)."""
    return [root / DEFAULT_PARAMS, *sorted((root / PROFILES_DIR).glob("*.yaml"))]


def run_experiment(*, dvc_args: list[str], root: str | Path = ".", dvc: list[str] | None = None) -> int:
    """Run ``dvc exp run <dvc_args>`` in ``root``; if it fails or is interrupted, restore the params files.

    Parameters
    ----------
    dvc_args : list of str
        Arguments after ``dvc exp run``, e.g. ``["-S", "model=vgg16"]``.
    root : str or Path
        The repository (the workspace DVC runs in).
    dvc : list of str, optional
        The command that runs DVC; default: this interpreter's ``python -m dvc``.

    Returns
    -------
    int
        DVC's exit code.
    """
    root = Path(root)
    saved = {path: path.read_bytes() for path in params_files(root) if path.is_file()}
    proc = subprocess.Popen([*(dvc or [sys.executable, "-m", "dvc"]), "exp", "run", *dvc_args], cwd=root)
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:
            pass  # DVC got the same Ctrl-C: let it restore git's HEAD and exit, then put the params back
    if code != 0:
        restored = [str(path.relative_to(root)) for path, data in saved.items() if _put_back(path, data)]
        print(f"experiment: dvc exp run failed (exit {code}); "
              f"{'put back as before the run: ' + ', '.join(restored) if restored else 'no params file changed'}",
              file=sys.stderr, flush=True)
    return code


def _put_back(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` if its content differs; whether it did."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.write_bytes(data)
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line: every argument goes to ``dvc exp run``."""
    return run_experiment(dvc_args=list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
