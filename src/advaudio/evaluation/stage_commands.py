"""The attack stages as dvc.yaml defines them, read through DVC: the one place their modes and paths are typed.

Tools that act on an attack stage's outputs (the re-check, the cost planner) take the stage's paths and whether
its bound applies from its command in dvc.yaml (``foreach`` and ``${...}`` resolved by DVC), never a copy.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from advaudio.errors import DataError

ATTACK_STAGE = "attack"  # dvc.yaml's foreach block: stages attack@<mode>


def stage_options(stage: str, *, root: str | Path = ".") -> dict[str, str]:
    """The ``--name value`` options of stage ``stage``'s command in dvc.yaml, as DVC resolves it.

    Raises
    ------
    DataError
        When dvc.yaml has no such stage.
    """
    return _commands(root).get(stage) or _missing(stage, root)


def attack_modes(*, root: str | Path = ".") -> dict[str, dict[str, str]]:
    """``{mode: options}`` of every stage ``attack@<mode>`` in dvc.yaml, in its order."""
    prefix = f"{ATTACK_STAGE}@"
    return {name[len(prefix):]: options for name, options in _commands(root).items() if name.startswith(prefix)}


def _commands(root: str | Path) -> dict[str, dict[str, str]]:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            commands = {stage.name: getattr(stage, "cmd", None) for stage in repo.index.stages}
    except DvcException as exc:
        raise DataError(f"{Path(root) / 'dvc.yaml'}: {' '.join(str(exc).split())}") from None
    return {name: _options(cmd) for name, cmd in commands.items() if cmd}


def _options(cmd: str) -> dict[str, str]:
    words = shlex.split(cmd)
    return {word[2:]: value for word, value in zip(words, words[1:]) if word.startswith("--")}


def _missing(stage: str, root: str | Path) -> dict[str, str]:
    raise DataError(f"{Path(root) / 'dvc.yaml'}: no stage {stage!r}")
