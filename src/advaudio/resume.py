"""Resume state of the long stages (spectrogram, train, attack@<mode>): one folder per stage, valid for one set
of inputs.

A stage that runs for hours saves what it has finished (staged feature shards, the training state after each
epoch, each attack's search state after each rung) in a folder outside every DVC output, so DVC neither deletes
it before a rerun nor takes it for a result. A rerun after a crash or ``kill -9`` continues from there.

Such a state is only valid for the inputs that made it. :func:`stage_inputs` names them exactly as DVC does:
every dep of the stage in ``dvc.yaml`` (code, data, upstream outputs; hashed by DVC itself, so a folder dep
counts every file in it) and every params key the stage lists, plus a few facts DVC does not track that change
the numbers (the torch device, library versions). :class:`ResumeFolder` records them beside the state
(``inputs.json``); a folder saved under other inputs is deleted with one line on stderr naming what changed,
and the stage starts from scratch. So an edit to any dep (``training/loop.py`` after a ``kill -9`` in
``train``, say) never resumes a state the old code made.

What a state file holds, and how it is checked, belongs to its stage (:mod:`advaudio.evaluation.search_state`,
:mod:`advaudio.training.state`, :mod:`advaudio.features.staging`). A file that does not load or does not fit is
deleted with a one-line message and that part of the work is done again: a bad file never blocks a stage.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence, TypeVar

from advaudio.errors import DataError
from advaudio.io import atomic_path, discard, write_json

T = TypeVar("T")
RESUME_ROOT = Path("build/.resume")  # one folder per stage under it: build/.resume/<stage>
INPUTS_FILE = "inputs.json"
_SHOWN_CHANGES = 4  # changed inputs named in the message; the rest are counted


def stage_inputs(stage: str, *, root: str | Path | None = None, extra: Mapping[str, Any] | None = None,
                 ignore: Sequence[str] = ()) -> dict[str, str]:
    """What the DVC stage ``stage`` depends on, each with a digest of its content.

    Parameters
    ----------
    stage : str
        The stage's name in ``dvc.yaml`` (``train``, ``attack@original``: DVC's ``foreach`` and ``${...}`` are
        resolved by DVC).
    root : str or Path, optional
        The repository; default ``$DVC_ROOT`` (set by ``dvc repro`` for every stage command), else the current
        folder.
    extra : mapping, optional
        Facts DVC does not track but that change the stage's numbers (``{"device": "cuda"}``); each becomes
        an input ``extra:<name>``.
    ignore : sequence of str
        Dotted params keys left out (settings that change the speed but never a value, e.g.
        ``spectrogram.workers``).

    Returns
    -------
    dict
        ``{dep path: DVC's hash}`` for file and folder deps (``"missing"`` for a dep not on disk),
        ``{"param:<key>": JSON of its value}`` for params, ``{"extra:<name>": JSON}`` for ``extra``.

    Raises
    ------
    DataError
        If ``root`` is not a DVC project or its ``dvc.yaml`` has no stage ``stage``.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    root = Path(root if root is not None else os.environ.get("DVC_ROOT", "."))
    target = f"{root.resolve() / 'dvc.yaml'}:{stage}"  # not relative to the current folder
    inputs: dict[str, str] = {}
    try:
        with Repo(str(root)) as repo:
            (found,) = repo.stage.collect(target)
            for dep in found.deps:
                if hasattr(dep, "read_params"):
                    for key, value in dep.read_params().items():
                        inputs[f"param:{key}"] = _canonical(_without(value, key=key, ignore=ignore))
                else:
                    inputs[dep.def_path] = dep.get_hash().value if dep.exists else "missing"
    except (DvcException, ValueError) as exc:
        raise DataError(f"{root / 'dvc.yaml'}: cannot name the inputs of stage {stage!r} "
                        f"({' '.join(str(exc).split())})") from None
    for name, value in (extra or {}).items():
        inputs[f"extra:{name}"] = _canonical(value)
    return inputs


def open_resume_folder(stage: str, *, then: str, extra: Mapping[str, Any] | None = None, ignore: Sequence[str] = (),
                       root: str | Path | None = None) -> ResumeFolder | None:
    """The resume folder of stage ``stage`` (``<root>/build/.resume/<stage>``), valid for its
    :func:`stage_inputs`; None outside a DVC project or without DVC installed (a stage script run by hand, the GPU
    smoke run), said in one line on stderr: the stage then keeps no resume state and a crash starts it over.

    Parameters
    ----------
    stage, extra, ignore, root
        As for :func:`stage_inputs`.
    then : str
        What the stage does without a saved state (:class:`ResumeFolder`).
    """
    root = Path(root if root is not None else os.environ.get("DVC_ROOT", "."))
    if not (root / ".dvc").is_dir() or importlib.util.find_spec("dvc") is None:
        print(f"{stage}: {root.resolve()} is not a DVC project (or DVC is not installed): no resume state is kept",
              file=sys.stderr, flush=True)
        return None
    return ResumeFolder(root / RESUME_ROOT / stage, then=then,
                        inputs=stage_inputs(stage, root=root, extra=extra, ignore=ignore))


def _without(value: Any, *, key: str, ignore: Sequence[str]) -> Any:
    """``value`` of params key ``key`` without the sub-keys listed in ``ignore``."""
    if not isinstance(value, dict):
        return value
    drop = {k[len(key) + 1:] for k in ignore if k.startswith(key + ".")}
    return {k: _without(v, key=f"{key}.{k}", ignore=ignore) for k, v in value.items() if k not in drop}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def changed_inputs(saved: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The inputs whose digest differs between ``saved`` and ``current`` (added and removed ones too), sorted."""
    return sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))


class ResumeFolder:
    """The resume folder of one stage, valid for one set of inputs.

    Opening it checks the recorded inputs: a folder saved under others (or without a record, or with one that
    does not load) is deleted, with one line on stderr naming the changed inputs and ``then``.

    Parameters
    ----------
    directory : str or Path
        The folder, outside every DVC output: ``build/.resume/<stage>`` (:data:`RESUME_ROOT`).
    inputs : mapping
        From :func:`stage_inputs`.
    then : str
        What the stage does without the state (``"training starts from its first epoch"``).
    """

    def __init__(self, directory: str | Path, *, inputs: Mapping[str, str], then: str) -> None:
        self.directory = Path(directory)
        self.inputs = dict(inputs)
        self.then = then
        self.discarded = self._drop_stale()
        if not (self.directory / INPUTS_FILE).is_file():
            write_json(self.directory / INPUTS_FILE, self.inputs)

    def _drop_stale(self) -> bool:
        """Delete the folder when it was saved under other inputs; whether it was."""
        if not self.directory.exists():
            return False
        record = self.directory / INPUTS_FILE
        try:
            saved = json.loads(record.read_text())
            if not isinstance(saved, dict) or not all(isinstance(v, str) for v in saved.values()):
                raise ValueError("not a mapping of digests")
        except (OSError, ValueError) as exc:
            reason = f"{record.name} is missing or unreadable: {type(exc).__name__}"
        else:
            changed = changed_inputs(saved, self.inputs)
            if not changed:
                return False
            more = len(changed) - _SHOWN_CHANGES
            reason = (f"saved under other inputs: {', '.join(changed[:_SHOWN_CHANGES])}"
                      f"{f' and {more} more' if more > 0 else ''} changed")
        discard(self.directory, reason=reason, then=self.then)
        return True

    def reset(self, *, reason: str) -> None:
        """Delete everything saved (one part spoiled the rest, e.g. the scaling every shard was made with), with
        ``reason`` and the folder's ``then`` on stderr; the folder stays valid for its inputs."""
        discard(self.directory, reason=reason, then=self.then)
        write_json(self.directory / INPUTS_FILE, self.inputs)

    def path(self, name: str) -> Path:
        """The path of state file ``name`` in the folder."""
        return self.directory / name

    def load(self, name: str, read: Callable[[Path], T], *, then: str | None = None) -> T | None:
        """``read(path)`` of state file ``name``, or None when there is none.

        A file ``read`` refuses (raising :class:`~advaudio.errors.DataError` that names it and says why) is
        deleted with that reason and ``then`` (default: the folder's) on stderr, and None returned.
        """
        path = self.path(name)
        if not path.exists():
            return None
        try:
            return read(path)
        except DataError as exc:
            discard(path, reason=str(exc), then=then or self.then)
            return None

    def save(self, name: str, write: Callable[[IO[bytes]], None]) -> None:
        """Write state file ``name`` atomically through ``write(file object)``.

        Raises
        ------
        DiskFullError
            When it does not fit on the disk (nothing is left half-written).
        """
        with atomic_path(self.path(name)) as tmp, open(tmp, "wb") as fh:  # a file object: ENOSPC reaches us
            write(fh)

    def clear(self) -> None:
        """Delete the folder (the stage's outputs are written), and a ``.resume`` parent left empty."""
        shutil.rmtree(self.directory, ignore_errors=True)
        if self.directory.parent.name == RESUME_ROOT.name:
            try:
                self.directory.parent.rmdir()
            except OSError:
                pass  # another stage's folder is there
