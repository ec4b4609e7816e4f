"""`make exp` (python -m advaudio.experiment): a failed `dvc exp run -S` leaves the params files byte for byte as
they were; a successful one leaves the experiment in the workspace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from advaudio.experiment import run_experiment

# comments, odd spacing and no final newline: a YAML round trip would not give these bytes back
PARAMS = b"# mine\nmodel: resnet56   # keep\ntrain:\n  batch_size: 64\n  lr: 0.001"
PROFILE = b"attack:\n  n_victims: 100\n"


def _fake_dvc(tmp_path: Path, *, exit_code: int) -> list[str]:
    """A stand-in for ``dvc`` that writes -S overrides into the params files, as DVC does, then exits."""
    script = tmp_path / "fake_dvc.py"
    script.write_text(textwrap.dedent(f"""
        import pathlib, sys
        pathlib.Path("params.yaml").write_text("model: vgg61\\ntrain:\\n  batch_size: 0\\n")
        pathlib.Path("profiles/study.yaml").write_text("attack:\\n  n_victims: 1\\n")
        sys.exit({exit_code})
    """))
    return [sys.executable, str(script)]


def _workspace(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "profiles").mkdir(parents=True)
    (root / "params.yaml").write_bytes(PARAMS)
    (root / "profiles" / "study.yaml").write_bytes(PROFILE)
    return root


def test_a_failed_run_puts_the_params_files_back_byte_for_byte(tmp_path, capsys):
    root = _workspace(tmp_path)
    code = run_experiment(dvc_args=["-S", "model=vgg61"], root=root, dvc=_fake_dvc(tmp_path, exit_code=255))
    assert code == 255
    assert (root / "params.yaml").read_bytes() == PARAMS
    assert (root / "profiles" / "study.yaml").read_bytes() == PROFILE
    assert "put back as before the run: params.yaml, profiles/study.yaml" in capsys.readouterr().err


def test_a_successful_run_keeps_the_experiment(tmp_path):
    root = _workspace(tmp_path)
    assert run_experiment(dvc_args=["-S", "model=vgg16"], root=root, dvc=_fake_dvc(tmp_path, exit_code=0)) == 0
    assert b"vgg61" in (root / "params.yaml").read_bytes()


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_documented_command_leaves_params_yaml_as_it_was_after_a_failing_dvc_run(tmp_path):
    """The real DVC in a scratch git repository with one stage that refuses the overridden value, as
    validate_params refuses `model=vgg61`. Plain `dvc exp run -S` leaves the value in params.yaml."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_bytes(PARAMS + b"\n")
    (repo / "check.py").write_text(textwrap.dedent("""
        import sys, yaml
        params = yaml.safe_load(open("params.yaml"))
        if params["model"] != "resnet56" or params["train"]["batch_size"] != 64:
            sys.exit(f"check: bad params {params}")
        open("ok.txt", "w").write("ok\\n")
    """))
    (repo / "dvc.yaml").write_text(textwrap.dedent(f"""
        stages:
          check:
            cmd: {sys.executable} check.py
            deps: [check.py]
            params: [model, train.batch_size]
            outs: [ok.txt]
    """))
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "test@example.com")
    _git(repo, "config", "user.name", "test")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, env=env, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=repo, env=env, check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "baseline")
    before = (repo / "params.yaml").read_bytes()

    for override in ("model=vgg61", "train.batch_size=32"):  # 32: the size of the committed file, see experiment.py
        done = subprocess.run([sys.executable, "-m", "advaudio.experiment", "-S", override], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode != 0, done.stdout + done.stderr
        assert "put back as before the run: params.yaml" in done.stderr
        assert (repo / "params.yaml").read_bytes() == before
        assert _git(repo, "status", "--porcelain", "--untracked-files=no").stdout == ""
