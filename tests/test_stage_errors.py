"""Every stage refuses bad parameters and bad data in one line, ``<stage>: <message>``, with exit code 2 and no
traceback (advaudio.stage_log.run_stage)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advaudio.errors import ConfigError, DataError
from advaudio.stage_log import REFUSED, run_stage
from stage_trees import make_dvc_project, stage_args

STAGES = Path(__file__).resolve().parent.parent / "stages"
_TORCH = pytest.mark.slow  # these import torch: ~5 s each on 2 cores
# (script, arguments, the DVC stage it is)
STAGE_RUNS = [
    ("validate_params.py", stage_args("validate_params"), "validate_params"),
    ("synth.py", stage_args("synth"), "synth"),
    ("augment.py", stage_args("augment"), "augment"),
    ("spectrogram.py", stage_args("spectrogram"), "spectrogram"),
    ("tables.py", stage_args("tables"), "tables"),
    pytest.param("train.py", stage_args("train"), "train", marks=_TORCH),
    pytest.param("victims.py", stage_args("victims"), "victims", marks=_TORCH),
    pytest.param("attack.py", stage_args("attack@original"), "attack@original", marks=_TORCH),
    pytest.param("attack.py", stage_args("attack@retrained"), "attack@retrained", marks=_TORCH),
    pytest.param("roundtrip.py", stage_args("roundtrip"), "roundtrip", marks=_TORCH),
    pytest.param("fgsm_retrain.py", stage_args("fgsm_retrain"), "fgsm_retrain", marks=_TORCH),
    pytest.param("fgsm_retrain.py", stage_args("clean_finetune"), "clean_finetune", marks=_TORCH),
    pytest.param("fgsm_retrain.py", stage_args("pgd_retrain"), "pgd_retrain", marks=_TORCH),
    pytest.param("transfer.py", stage_args("transfer"), "transfer", marks=_TORCH),
]


def _run(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ADVAUDIO_NO_TCMALLOC="1", OMP_NUM_THREADS="1")  # no re-exec: one process to watch
    return subprocess.run([sys.executable, str(STAGES / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _assert_refused(proc: subprocess.CompletedProcess, *, stage: str, names: str) -> None:
    assert proc.returncode == REFUSED, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{stage}: ") and names in last, proc.stderr


def test_every_stage_script_is_checked_here():
    scripts = {run.values[0] if hasattr(run, "values") else run[0] for run in STAGE_RUNS}
    assert scripts == {p.name for p in STAGES.glob("*.py")} - {"_checkout.py"}


@pytest.mark.parametrize(("script", "args", "stage"), STAGE_RUNS)
def test_a_bad_parameter_ends_every_stage_in_one_line(tmp_path, script, args, stage):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"epochs": "ten"}}))
    _assert_refused(_run(script, args, tmp_path), stage=stage, names="train.epochs must be an integer, got 'ten'")


@_TORCH
def test_missing_attack_results_end_transfer_in_one_line_naming_the_file(tmp_path):
    from advaudio.training.fake_features import write_fake_features

    write_fake_features(tmp_path / "build" / "features", n_folds=4)
    params = yaml.safe_load((STAGES.parent / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "device": "cpu"}))
    _assert_refused(_run("transfer.py", stage_args("transfer"), tmp_path), stage="transfer",
                    names="build/attacks/original_bounded/results.npz")


def test_a_validation_fold_outside_the_pool_ends_train_in_one_line(tmp_path):
    """The issue's example: ``train.val_fold: 7`` is refused by the training code, after the params loaded."""
    from advaudio.training.fake_features import write_fake_features

    write_fake_features(tmp_path / "build" / "features", n_folds=4)
    params = yaml.safe_load((STAGES.parent / "params.yaml").read_text())
    params.update(device="cpu")
    params["train"].update(val_fold=7)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    make_dvc_project(tmp_path)
    _assert_refused(_run("train.py", stage_args("train"), tmp_path), stage="train", names="train.val_fold = 7")


@pytest.mark.parametrize("error", [ConfigError, DataError])
def test_run_stage_prints_one_line_and_exits_2(capsys, error):
    def main() -> int:
        raise error("a.yaml is not valid YAML:\n  in line 3\n    ^")

    with pytest.raises(SystemExit) as info:
        run_stage("demo", main)
    assert info.value.code == REFUSED
    assert capsys.readouterr().err == "demo: a.yaml is not valid YAML: | in line 3 | ^\n"


def test_run_stage_keeps_the_exit_code_and_the_traceback_of_a_bug():
    with pytest.raises(SystemExit) as info:
        run_stage("demo", lambda: 0)
    assert info.value.code == 0
    with pytest.raises(KeyError):
        run_stage("demo", lambda: {}["bug"])


@pytest.mark.parametrize("kind", ["fifo", "dangling link"])
def test_a_fifo_or_dangling_link_in_data_is_named_before_dvc_hangs_on_it(tmp_path, kind):
    (tmp_path / "params.yaml").write_text((STAGES.parent / "params.yaml").read_text())
    (tmp_path / "profiles").mkdir()
    odd = tmp_path / "data" / "ESC-50" / "audio" / "x.wav"
    odd.parent.mkdir(parents=True)
    (odd.parent / "fine.wav").write_bytes(b"RIFF")
    os.mkfifo(odd) if kind == "fifo" else odd.symlink_to(tmp_path / "gone.wav")
    _assert_refused(_run("validate_params.py", stage_args("validate_params"), tmp_path), stage="validate_params",
                    names="data/ESC-50/audio/x.wav is not a regular file (1 such under data/)")
