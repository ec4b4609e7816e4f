"""The stages' commands as dvc.yaml defines them: the one place the attack modes and every stage's paths are typed.

Tools that act on a stage's outputs (the re-check, the cost planner, the GPU smoke run) take the stage's paths
and whether its bound applies from its command in dvc.yaml, never a copy. DVC resolves the file (``foreach``,
``${...}``); where DVC is not installed or cannot open the folder (the GPU smoke run's copy, without git) the
commands are read with PyYAML, which resolves the ``${key}`` and ``${item.<field>}`` of ``foreach`` entries, the
only interpolation the commands use.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import yaml

from advaudio.errors import DataError

ATTACK_STAGE = "attack"  # dvc.yaml's foreach block: stages attack@<mode>


def stage_options(stage: str, *, root: str | Path = ".") -> dict[str, str]:
    """The ``--name value`` options of stage ``stage``'s command in dvc.yaml, as DVC resolves it.

    Raises
    ------
    DataError
        When dvc.yaml has no such stage.
    """
    commands = _commands(root)
    if stage not in commands:
        raise DataError(f"{Path(root) / 'dvc.yaml'}: no stage {stage!r}")
    return commands[stage]


def attack_modes(*, root: str | Path = ".") -> dict[str, dict[str, str]]:
    """``{mode: options}`` of every stage ``attack@<mode>`` in dvc.yaml, in its order."""
    prefix = f"{ATTACK_STAGE}@"
    return {name[len(prefix):]: options for name, options in _commands(root).items() if name.startswith(prefix)}


def stage_commands(*, root: str | Path = ".") -> dict[str, list[str]]:
    """``{stage: command words}`` of every stage in dvc.yaml (``attack@original``: ``["python", ...]``)."""
    commands = None
    if importlib.util.find_spec("dvc"):
        commands = _dvc_commands(root)
    if commands is None:
        commands = _yaml_commands(root)
    return {name: shlex.split(cmd) for name, cmd in commands.items() if cmd}


def _commands(root: str | Path) -> dict[str, dict[str, str]]:
    return {name: _options(words) for name, words in stage_commands(root=root).items()}


def _dvc_commands(root: str | Path) -> dict[str, str] | None:
    """The commands as DVC resolves them; None where DVC cannot open ``root`` as a project."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc.scm import SCMError

    try:
        repo = Repo(str(root))
    except (NotDvcRepoError, SCMError):
        return None
    try:
        with repo:
            return {stage.name: stage.cmd for stage in repo.index.stages if getattr(stage, "cmd", None)}
    except DvcException as exc:
        raise DataError(f"{Path(root) / 'dvc.yaml'}: {' '.join(str(exc).split())}") from None


def _yaml_commands(root: str | Path) -> dict[str, str | None]:
    path = Path(root) / "dvc.yaml"
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages", {})
    out: dict[str, str | None] = {}
    for name, spec in stages.items():
        if "foreach" not in spec:
            out[name] = spec.get("cmd")
            continue
        for key, item in spec["foreach"].items():
            fields = {"key": key, **{f"item.{k}": str(v).lower() if isinstance(v, bool) else str(v)
                                     for k, v in (item or {}).items()}}
            out[f"{name}@{key}"] = _interpolate(spec["do"]["cmd"], fields, path=path)
    return out


def _interpolate(cmd: str, fields: dict[str, str], *, path: Path) -> str:
    def value(match: re.Match) -> str:
        if match.group(1) not in fields:
            raise DataError(f"{path}: ${{{match.group(1)}}} in {cmd!r} needs DVC to resolve")
        return fields[match.group(1)]

    return re.sub(r"\$\{\s*([\w.]+)\s*\}", value, cmd)


def _options(words: list[str]) -> dict[str, str]:
    """``--name value`` pairs; a flag followed by another option (``--control``) has no value and is left out."""
    return {word[2:]: value for word, value in zip(words, words[1:])
            if word.startswith("--") and not value.startswith("--")}
