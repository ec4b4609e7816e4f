"""Project trees for running stage scripts as subprocesses: a DVC project (no git) holding the repository's
dvc.yaml, so a stage finds its own deps and params (advaudio.resume.stage_inputs), and the exact commands
dvc.yaml gives each stage."""

import functools
import shutil
from pathlib import Path

from advaudio.evaluation.stage_commands import stage_commands

REPO = Path(__file__).resolve().parents[1]


def make_dvc_project(root: Path) -> None:
    """Make ``root`` a DVC project (no git) with the repository's dvc.yaml (deps it lacks count as missing)."""
    from dvc.repo import Repo

    if not (root / ".dvc").is_dir():
        Repo.init(str(root), no_scm=True).close()
    shutil.copyfile(REPO / "dvc.yaml", root / "dvc.yaml")


@functools.cache
def _commands() -> dict[str, tuple[str, ...]]:
    return {name: tuple(words) for name, words in stage_commands(root=REPO).items()}


def stage_script(stage: str) -> str:
    """The script of ``stage`` (``attack.py``) as dvc.yaml runs it."""
    words = _commands()[stage]
    assert words[0] == "python" and words[1].startswith("stages/"), words
    return words[1].removeprefix("stages/")


def stage_args(stage: str) -> list[str]:
    """The arguments dvc.yaml passes the script of ``stage``."""
    return list(_commands()[stage][2:])
