"""A toy git + DVC repository with advaudio's grid params and summary keys, for the grid's runner tests.

Its ``features`` stage depends only on the representation (shared by the models of one representation) and
appends the representation to a counter file each time it really runs; its ``cell`` stage writes
``metrics/summary.json`` and fails for the ``fail`` cell, or for every cell while ``fail_flag`` exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_FEATURES = """\
import pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
with open({counter!r}, "a") as fh:
    fh.write(p["representation"] + "\\n")
pathlib.Path("build").mkdir(exist_ok=True)
pathlib.Path("build/features.txt").write_text(p["representation"] + "\\n")
"""
_CELL = """\
import json, os, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
if (p["model"], p["representation"]) == tuple({fail!r}) and ({flag!r} is None or os.path.exists({flag!r})):
    raise SystemExit("toy failure")
acc = {{"resnet56": 0.78, "vgg16": 0.74}}[p["model"]]
ratio = {{"stft": 1.25, "dwt": 1.5}}[p["representation"]]
pathlib.Path("metrics").mkdir(exist_ok=True)
json.dump({{"accuracy": acc, "accuracy_retrained": acc - 0.08, "accuracy_drop": 8.0,
           "bounded_fooling_rate": 0.4, "bounded_fooling_rate_original": 0.7, "eps_ratio": ratio}},
          open("metrics/summary.json", "w"))
"""
_DVC_YAML = """\
stages:
  features:
    cmd: python features.py
    deps: [features.py]
    params: [representation]
    outs: [build/features.txt]
  cell:
    cmd: python cell.py
    deps: [cell.py, build/features.txt]
    params: [dataset, model]
    metrics:
    - metrics/summary.json:
        cache: false
"""
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t"}


def make_toy_repo(root: Path, *, counter: Path, fail: tuple[str, str] = ("", ""),
                  fail_flag: Path | None = None) -> Path:
    """Create the toy repository under ``root/repo`` and commit it; return its path.

    ``fail`` is a (model, representation) cell that fails: always, or while ``fail_flag`` exists.
    """
    repo = root / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text(
        "dataset: synth\ndataset_dir: build/synth\nrepresentation: stft\nmodel: resnet56\n"
    )
    (repo / "features.py").write_text(_FEATURES.format(counter=str(counter)))
    (repo / "cell.py").write_text(_CELL.format(fail=list(fail), flag=str(fail_flag) if fail_flag else None))
    (repo / "dvc.yaml").write_text(_DVC_YAML)
    (repo / ".gitignore").write_text("/build/\n")
    env = {**os.environ, **GIT_IDENTITY}
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "toy"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    return repo
