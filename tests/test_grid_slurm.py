"""The grid on a real one-node SLURM cluster (slow): a 2 x 2 toy grid, a bare git remote, a shared DVC cache.

The cluster is started by the test (tests/slurm_cluster.py) and skipped, with the reason printed, where it
cannot start (not root, SLURM not installed); `.ci/run` installs SLURM as root, so CI runs it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import slurm_cluster
from advaudio.report import grid as grid_cli
from toy_grid import make_toy_repo

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    reason = slurm_cluster.unavailable()
    if reason:
        print(f"skipping the SLURM grid test: {reason}")
        pytest.skip(reason)
    running = slurm_cluster.start_cluster(tmp_path / "slurm", gpus=2)
    monkeypatch.setenv("SLURM_CONF", running.env["SLURM_CONF"])
    yield running
    running.stop()


def _jobs_submitted(cluster) -> int:
    out = subprocess.run(["squeue", "-h", "-a", "-t", "all", "-o", "%A"], env=cluster.env, text=True,
                         capture_output=True, check=True).stdout
    return len(set(out.split()))


def test_slurm_grid_runs_skips_finished_cells_and_lists_a_failed_one(tmp_path, cluster, capsys):
    counter = tmp_path / "features_runs.txt"
    flag = tmp_path / "fail_vgg16_dwt"
    flag.touch()
    repo = make_toy_repo(tmp_path, counter=counter, fail=("vgg16", "dwt"), fail_flag=flag)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    cache = tmp_path / "shared-cache"
    args = ["--executor", "slurm", "--wait", "--models", "resnet56", "vgg16", "--representations", "stft", "dwt",
            "--jobs", "2", "--gpus-per-task", "1", "--shared-stage", "features", "--git-remote", str(remote),
            "--cache-dir", str(cache), "--cache-type", "symlink", "--sbatch=--time=10", "--repo", str(repo)]

    # 1. one cell fails: exit 1, listed with its log; the other three reach the remote and the tables
    assert grid_cli.main(args) == 1
    err = capsys.readouterr().err
    log = repo / "build" / "grid"
    assert "FAILED synth/dwt/vgg16: synth-dwt-vgg16 (log: " in err
    failed_log = next(log.glob("*/logs/synth-dwt-vgg16.log"))
    assert "toy failure" in failed_log.read_text() and str(failed_log) in err
    tables = json.loads((repo / "reports" / "grid" / "tables.json").read_text())
    assert tables["table3"]["synth"]["stft"] == {"resnet56": 1.25, "vgg16": 1.25}
    refs = subprocess.run(["git", "ls-remote", str(remote), "refs/exps/*"], text=True, capture_output=True,
                          check=True).stdout
    assert sorted(r.rsplit("/", 1)[1] for r in refs.split()[1::2]) == [
        "synth-dwt-resnet56", "synth-stft-resnet56", "synth-stft-vgg16"]
    # the shared stage ran once per representation (prep tasks), every cell restored it from the run-cache
    assert sorted(counter.read_text().split()) == ["dwt", "stft"]
    script = next(log.glob("*/advaudio-cell.sbatch")).read_text()
    assert "#SBATCH --array=2-5%2" in script and "#SBATCH --gres=gpu:1" in script and "#SBATCH --time=10" in script
    jobs_before = _jobs_submitted(cluster)

    # 2. fixed: the resubmission runs only the failed cell (and its group's prep, restored from the run-cache)
    flag.unlink()
    assert grid_cli.main(args) == 0
    out = capsys.readouterr().out
    assert "3 already finished" in out and "1 to run" in out
    tables = json.loads((repo / "reports" / "grid" / "tables.json").read_text())
    assert tables["table3"]["synth"]["dwt"] == {"resnet56": 1.5, "vgg16": 1.5}
    assert len([c for t in tables["table3"]["synth"].values() for c in t]) == 4
    assert sorted(counter.read_text().split()) == ["dwt", "stft"]
    assert _jobs_submitted(cluster) == jobs_before + 2

    # 3. everything finished: a third submission submits nothing and still writes the tables
    assert grid_cli.main(args) == 0
    assert "4 already finished" in capsys.readouterr().out
    assert _jobs_submitted(cluster) == jobs_before + 2


def test_the_projects_smoke_grid_runs_on_slurm_from_a_fresh_clone(tmp_path, cluster, capsys):
    """The real pipeline, every stage, at profile=smoke: a 2 x 1 grid from a clone of this repository's HEAD."""
    project = Path(__file__).resolve().parents[1]
    clone = tmp_path / "advaudio"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    args = ["--executor", "slurm", "--wait", "--profile", "smoke", "--models", "resnet56", "vgg16",
            "--representations", "stft", "--repo", str(clone)]
    assert grid_cli.main(args) == 0, capsys.readouterr().err
    tables = json.loads((clone / "reports" / "grid" / "tables.json").read_text())
    assert {e["experiment"] for e in tables["experiments"]} == {"synth-stft-resnet56-smoke", "synth-stft-vgg16-smoke"}
    assert set(tables["table1"]["synth"]["stft"]) == {"resnet56", "vgg16"}
    logs = {p.name: p.read_text() for p in clone.glob("build/grid/*/logs/*.log")}
    assert "Running stage 'spectrogram'" in logs["prep-synth-stft-smoke.log"]
    for cell in ("synth-stft-resnet56-smoke.log", "synth-stft-vgg16-smoke.log"):
        assert "Stage 'spectrogram' is cached - skipping run" in logs[cell]
        assert "Running stage 'tables'" in logs[cell]
    jobs = _jobs_submitted(cluster)
    capsys.readouterr()
    assert grid_cli.main(args) == 0
    assert "2 already finished" in capsys.readouterr().out and _jobs_submitted(cluster) == jobs
