"""Outputs of an experiment's commit, read through DVC's file system (the cache, else the DVC remote).

The grid's cells leave their outputs (checkpoints, victims, stored adversarials) in the DVC cache they share or in
a DVC remote, not in the workspace; this copies the few files a report needs out of one experiment's commit.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advaudio.errors import DataError

REMOTE_NAME = "experiments"  # the name --dvc-remote goes by in the config overrides below


@dataclass(frozen=True)
class DvcStore:
    """Where the experiments' outputs are: the repository, and the grid's ``--cache-dir`` and ``--dvc-remote``
    when it was given them (otherwise the repository's own cache and default remote)."""

    repo: Path
    cache_dir: str | None = None
    dvc_remote: str | None = None

    def config(self) -> dict[str, Any] | None:
        """The DVC config overrides that point the repository at that cache and remote (None: none needed)."""
        config: dict[str, Any] = {}
        if self.cache_dir is not None:
            config["cache"] = {"dir": str(Path(self.cache_dir).expanduser().resolve())}
        if self.dvc_remote is not None:
            config["core"] = {"remote": REMOTE_NAME}
            config["remote"] = {REMOTE_NAME: {"url": self.dvc_remote}}
        return config or None


class ExperimentFiles:
    """The files of one experiment's commit: :meth:`copy` brings one into a local folder.

    Parameters
    ----------
    store : DvcStore
        The repository and where its outputs are kept.
    rev : str
        The experiment's commit.
    name : str
        The experiment's name, for messages.
    """

    def __init__(self, *, store: DvcStore, rev: str, name: str) -> None:
        from dvc.api import DVCFileSystem
        from dvc.exceptions import DvcException

        self.rev, self.name = rev, name
        try:
            self._fs = DVCFileSystem(str(store.repo), rev=rev, config=store.config())
        except DvcException as exc:
            raise DataError(f"experiment {name!r} (commit {rev[:12]}) cannot be opened in {store.repo}: "
                            f"{' '.join(str(exc).split())}") from None

    def copy(self, path: str, *, into: Path) -> Path:
        """Copy ``path`` (relative to the repository root) of this commit to ``into / path``; return that file.

        Raises
        ------
        DataError
            Naming the path, the experiment and its commit, when the commit has no such output or its data is
            in neither the cache nor the DVC remote.
        """
        from dvc.exceptions import DvcException

        local = into / path
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._fs.open(path, mode="rb") as src, local.open("wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
        except (FileNotFoundError, DvcException) as exc:  # DVC reports data in no storage as not found
            local.unlink(missing_ok=True)
            raise DataError(f"{path} of experiment {self.name!r} (commit {self.rev[:12]}) cannot be read: "
                            f"{' '.join(str(exc).split())}; expected an output of its pipeline in the DVC cache "
                            "or remote (collect with the grid's --cache-dir/--dvc-remote, or `dvc exp pull` "
                            "the experiment with its cache)") from None
        return local
