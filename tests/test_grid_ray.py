"""The Ray executor on a local ``ray.init`` (slow): the same cell runner as Ray tasks, on the toy repo.

Skipped, with the reason, where Ray is not installed (``pip install 'advaudio[ray]'``; `.ci/run` installs it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from advaudio.report import grid as grid_cli
from toy_grid import make_toy_repo

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_tmp(monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'advaudio[ray]')")
    folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    monkeypatch.setenv("RAY_TMPDIR", str(folder))
    monkeypatch.setenv("HOME", str(folder))  # Ray writes ~/.ray
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_ray_executor_runs_the_cells_and_a_resubmission_runs_none(tmp_path, ray_tmp, capsys):
    counter = tmp_path / "features_runs.txt"
    repo = make_toy_repo(tmp_path, counter=counter)
    args = ["--executor", "ray", "--models", "resnet56", "vgg16", "--representations", "stft",
            "--cpus-per-task", "1", "--shared-stage", "features", "--repo", str(repo)]
    assert grid_cli.main(args) == 0
    tables = json.loads((repo / "reports" / "grid" / "tables.json").read_text())
    assert tables["table3"]["synth"]["stft"] == {"resnet56": 1.25, "vgg16": 1.25}
    assert counter.read_text().split() == ["stft"]  # the prep task computed it; both cells restored it
    assert "2 to run with the ray executor" in capsys.readouterr().out
    assert grid_cli.main(args) == 0
    assert "2 already finished" in capsys.readouterr().out
