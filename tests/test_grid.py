"""The grid's pieces without a cluster: cell names and overrides, thread division, the rendered sbatch script,
skipping finished cells, the manifest, the remote's experiment refs, and the local executor's core split."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from advaudio.errors import DataError
from advaudio.grid import cell_run, slurm
from advaudio.grid.cells import Cell, available_cpus, cores_per_job, grid_cells, thread_environment
from advaudio.grid.manifest import CELL, PREP, Manifest, read_manifest, write_manifest
from advaudio.grid.refs import experiment_ref, local_experiment, remote_experiments
from advaudio.grid.processes import run_stages
from advaudio.grid.submit import build_tasks, split_finished
from advaudio.parallel import allowed_workers
from advaudio.report import grid as grid_cli

BASELINE = "0123456789abcdef0123456789abcdef01234567"


def _cells(**kwargs):
    return grid_cells(datasets=[("synth", None)], representations=["stft", "dwt"], models=["resnet56", "vgg16"],
                      **kwargs)


def test_cell_names_are_deterministic_and_say_what_the_cell_is():
    cells = _cells(seeds=[0, 1], profile="smoke")
    assert [c.name for c in cells[:3]] == ["synth-stft-resnet56-s0-smoke", "synth-stft-resnet56-s1-smoke",
                                           "synth-stft-vgg16-s0-smoke"]
    assert [c.name for c in _cells(seeds=[0, 1], profile="smoke")] == [c.name for c in cells]
    plain = _cells()[0]
    assert plain.name == "synth-stft-resnet56"
    # extra overrides change the name (a different experiment), the same overrides give the same name
    a = _cells(extra=["train.epochs=3"])[0]
    assert a.name.startswith("synth-stft-resnet56-x") and a.name == _cells(extra=["train.epochs=3"])[0].name
    assert a.name != _cells(extra=["train.epochs=4"])[0].name


def test_cell_overrides_set_only_what_the_grid_names():
    assert _cells()[0].overrides() == ["representation=stft", "model=resnet56"]
    cell = grid_cells(datasets=[("esc50", "data/ESC-50")], representations=["dwt"], models=["vgg16"], seeds=[3],
                      profile="smoke", extra=["train.lr=0.01"])[0]
    assert cell.overrides() == ["profile=smoke", "dataset=esc50", "dataset_dir=data/ESC-50", "representation=dwt",
                                "model=vgg16", "seed=3", "train.lr=0.01"]
    assert Cell.from_json(cell.to_json()) == cell


def test_a_cell_name_that_is_not_a_valid_ref_is_refused():
    with pytest.raises(ValueError, match="not a valid experiment name"):
        _ = Cell(dataset="synth", representation="stft", model="a b").name


def test_cores_are_divided_between_jobs_and_held_in_every_thread_pool(monkeypatch):
    assert cores_per_job(cores=16, jobs=4) == 4
    assert cores_per_job(cores=2, jobs=3) == 1
    with pytest.raises(ValueError):
        cores_per_job(cores=2, jobs=0)
    env = thread_environment(3)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["ADVAUDIO_CPUS"] == "3"
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    assert available_cpus() == 5
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    monkeypatch.setenv("ADVAUDIO_CPUS", "2")
    assert available_cpus() == 2
    assert allowed_workers(4) == 2 and allowed_workers(1) == 1
    monkeypatch.delenv("ADVAUDIO_CPUS")
    assert allowed_workers(4) == 4


def test_sbatch_script_has_the_array_cap_gpus_site_options_and_per_cell_logs(tmp_path):
    spec = slurm.ArraySpec(job_name="advaudio-cell", first=2, last=5, names=["a", "b", "c", "d"], max_parallel=2,
                           cpus=4, gpus=1, dependency="17")
    script = slurm.render_sbatch(spec=spec, python="/env/bin/python", manifest=tmp_path / "m.json",
                                 log_dir=tmp_path / "logs", options=["--partition=gpu", "--time=12:00:00"])
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for expected in ("#SBATCH --array=2-5%2", "#SBATCH --cpus-per-task=4", "#SBATCH --gres=gpu:1",
                     "#SBATCH --partition=gpu", "#SBATCH --time=12:00:00", "names=(a b c d)"):
        assert expected in lines
    assert lines.index("#SBATCH --partition=gpu") > lines.index("#SBATCH --cpus-per-task=4")  # site options win
    assert "${names[$((SLURM_ARRAY_TASK_ID - 2))]}.log" in script
    assert f"-m advaudio.grid.cell_run --manifest {tmp_path / 'm.json'} --index \"$SLURM_ARRAY_TASK_ID\"" in script
    assert slurm.sbatch_command(script=Path("s.sbatch"), dependency="17") == [
        "sbatch", "--parsable", "--dependency=afterok:17", "--kill-on-invalid-dep=yes", "s.sbatch"]
    assert slurm.sbatch_command(script=Path("s.sbatch"), dependency=None) == ["sbatch", "--parsable", "s.sbatch"]
    no_cap = slurm.ArraySpec(job_name="x", first=0, last=0, names=["a"])
    assert no_cap.array == "0-0" and "--gres" not in slurm.render_sbatch(
        spec=no_cap, python="p", manifest=Path("m"), log_dir=Path("l"), options=[])


def test_finished_cells_are_skipped_unless_forced_and_prep_tasks_cover_each_group():
    cells = _cells()
    finished, pending = split_finished(cells, finished_names={"synth-stft-resnet56", "synth-dwt-vgg16"},
                                       force=False)
    assert [c.name for c in finished] == ["synth-stft-resnet56", "synth-dwt-vgg16"]
    assert [c.name for c in pending] == ["synth-stft-vgg16", "synth-dwt-resnet56"]
    assert split_finished(cells, finished_names={c.name for c in cells}, force=True)[1] == cells
    tasks = build_tasks(pending, shared_stage="spectrogram")
    assert [(t.kind, t.name) for t in tasks] == [
        (PREP, "prep-synth-stft"), (PREP, "prep-synth-dwt"), (CELL, "synth-stft-vgg16"), (CELL, "synth-dwt-resnet56")]
    assert all(t.target == "spectrogram" for t in tasks[:2])
    assert [t.kind for t in build_tasks(pending, shared_stage=None)] == [CELL, CELL]


def test_seeds_share_a_prep_task_and_profiles_do_not_because_only_the_profile_reaches_the_data_stages():
    cells = _cells(seeds=[0, 1], profile="smoke")
    assert cells[0].group_name == cells[1].group_name == "synth-stft-smoke"
    assert [c.name for c in cells[:2]] == ["synth-stft-resnet56-s0-smoke", "synth-stft-resnet56-s1-smoke"]
    preps = [t.name for t in build_tasks(cells, shared_stage="spectrogram") if t.kind == PREP]
    assert preps == ["prep-synth-stft-smoke", "prep-synth-dwt-smoke"]
    assert _cells(seeds=[0], profile="study")[0].group_name == "synth-stft-study"


def test_the_seed_reaches_no_data_stage_and_data_seed_reaches_them_all():
    stages = yaml.safe_load((Path(__file__).parents[1] / "dvc.yaml").read_text())["stages"]
    for name in ("synth", "augment", "spectrogram"):
        assert "seed" not in stages[name]["params"], name
    assert "data_seed" in stages["synth"]["params"] and "data_seed" in stages["augment"]["params"]
    for name in ("train", "victims"):
        assert "seed" in stages[name]["params"], name


def test_a_stage_with_a_failed_task_ends_the_run():
    ran = []

    def run_stage(stage):
        ran.append([i for i, _ in stage])
        return {i: (1 if i == 1 else 0) for i, _ in stage}

    stages = [[(0, Path("a")), (1, Path("b"))], [(2, Path("c"))]]
    assert run_stages(run_stage, stages) == {0: 0, 1: 1} and ran == [[0, 1]]
    assert run_stages(lambda stage: {i: 0 for i, _ in stage}, stages) == {0: 0, 1: 0, 2: 0}


def test_manifest_round_trips_and_a_bad_one_names_the_file(tmp_path):
    manifest = Manifest(baseline=BASELINE, source="/repo", git_remote="/remote.git", cache_dir="/cache",
                        work_root="/work", log_dir="/logs", tasks=build_tasks(_cells(), shared_stage="spectrogram"),
                        cache_type="symlink", python="/env/bin/python")
    write_manifest(manifest, tmp_path / "m.json")
    assert read_manifest(tmp_path / "m.json") == manifest
    assert manifest.log_path(manifest.tasks[2]) == Path("/logs/synth-stft-resnet56.log")
    (tmp_path / "bad.json").write_text('{"baseline": "x"}')
    with pytest.raises(DataError, match="bad.json: not a grid manifest"):
        read_manifest(tmp_path / "bad.json")
    assert cell_run.main(["--manifest", str(tmp_path / "m.json"), "--index", "9"]) == 2
    assert cell_run.main(["--manifest", str(tmp_path / "missing.json"), "--index", "0"]) == 2


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, text=True, capture_output=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}).stdout.strip()


def test_remote_experiments_are_read_from_the_refs_of_one_baseline(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    _git("commit", "-q", "--allow-empty", "-m", "base", cwd=repo)
    base = _git("rev-parse", "HEAD", cwd=repo)
    _git("update-ref", experiment_ref(baseline=base, name="synth-stft-vgg16"), base, cwd=repo)
    _git("update-ref", experiment_ref(baseline=BASELINE, name="other-baseline"), base, cwd=repo)
    assert remote_experiments(remote=str(repo), baseline=base) == {"synth-stft-vgg16": base}
    assert local_experiment(repo=repo, baseline=base, name="synth-stft-vgg16") == base
    assert local_experiment(repo=repo, baseline=base, name="nope") is None
    with pytest.raises(RuntimeError, match="git ls-remote"):
        remote_experiments(remote=str(tmp_path / "nowhere"), baseline=base)
    with pytest.raises(ValueError):
        experiment_ref(baseline="abc", name="x")


def test_grid_help_documents_the_executors(capsys):
    with pytest.raises(SystemExit):
        grid_cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--executor {local,slurm,ray}" in out and "sbatch job arrays" in out and "Ray tasks" in out
