"""FGSM against PGD retraining of one cell, from two revisions' committed metrics."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from advaudio.errors import DataError
from advaudio.report.retraining import main, read_run

CELL = {"dataset": "synth", "representation": "stft", "model": "resnet56", "seed": 0}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, text=True, capture_output=True).stdout.strip()


def _commit(repo: Path, *, method: str | None, summary: dict, masking_ok: float) -> str:
    retrain = {"epsilon": 0.03, "epochs": 5, **({} if method is None else {"method": method, "pgd_steps": 7})}
    (repo / "params.yaml").write_text(yaml.safe_dump({**CELL, "fgsm_retrain": retrain,
                                                      "attack": {"target_fooling_rate": 0.9}}))
    metrics = repo / "metrics"
    for mode in ("attack_retrained", "attack_original"):
        (metrics / "curves" / mode).mkdir(parents=True, exist_ok=True)
        for name in ("cw", "apgd_ce"):
            (metrics / "curves" / mode / f"{name}.csv").write_text("epsilon,fooling_rate\n0.0,0.0\n1.0,0.5\n")
    (metrics / "summary.json").write_text(json.dumps(summary))
    (metrics / "attack_retrained.json").write_text(json.dumps(
        {"cw": {"fooling_rate": 0.5}, "mean": {"fooling_rate": 0.5}, "reference": {"apgd_ce": {"fooling_rate": 0.6}},
         "sanity": {"fr_nondecreasing_in_eps": masking_ok}}))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", f"run {method}")
    return _git(repo, "rev-parse", "HEAD")


SUMMARY = {"accuracy": 0.8, "bounded_fooling_rate_original": 0.3, "bound_l2": 0.1, "accuracy_retrained": 0.75,
           "accuracy_drop": 5.0, "accuracy_control": 0.85, "bounded_fooling_rate": 0.1, "eps_ratio": 1.8, "reference_gap_retrained": 22.5,
           "reference_flag_retrained": 1.0}


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "metrics").mkdir()
    return tmp_path


def test_two_retrainings_of_one_cell_side_by_side(repo, tmp_path):
    fgsm = _commit(repo, method=None, summary=SUMMARY, masking_ok=0.0)  # before fgsm_retrain.method: FGSM
    pgd = _commit(repo, method="pgd", summary={**SUMMARY, "accuracy_retrained": 0.7, "accuracy_drop": 10.0,
                                               "reference_gap_retrained": 2.5, "reference_flag_retrained": 0.0},
                  masking_ok=1.0)
    _git(repo, "update-ref", f"refs/exps/{fgsm[:2]}/{fgsm[2:]}/pgd-run", pgd)  # a DVC experiment's ref
    assert read_run(repo, "pgd-run").label == "pgd" and read_run(repo, fgsm).label == "fgsm"
    assert sorted(read_run(repo, fgsm).curves) == ["apgd_ce", "cw"]  # the reference attack's curve too
    out = tmp_path / "out"
    assert main(["--repo", str(repo), "--run", fgsm, "--run", "pgd-run", "--out", str(out)]) == 0
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                               for line in (out / "retraining.md").read_text().splitlines()
                                               if line.startswith("|"))}
    assert rows[""] == ["fgsm", "pgd"]
    assert rows["clean test accuracy of the retrained model (%)"] == ["75.0", "70.0"]
    assert rows["accuracy drop (points)"] == ["+5.0", "+10.0"]
    assert rows["clean-finetune control: accuracy with the same epochs, clean loss (%)"] == ["85.0", "85.0"]
    assert rows["APGD flags the retrained model"] == ["**yes**", "no"]
    assert rows["fresh BIM's FR never falls as ε grows (masking check)"] == ["**FAIL**", "pass"]
    data = json.loads((out / "retraining.json").read_text())
    assert data["runs"]["pgd"]["metrics"]["accuracy_drop"] == 10.0 and data["original"]["accuracy"] == 0.8
    assert (out / "retraining_curves.png").stat().st_size > 0


def test_runs_of_different_original_models_are_refused(repo, tmp_path, capsys):
    a = _commit(repo, method="fgsm", summary=SUMMARY, masking_ok=1.0)
    b = _commit(repo, method="pgd", summary={**SUMMARY, "accuracy": 0.7}, masking_ok=1.0)
    assert main(["--repo", str(repo), "--run", a, "--run", b, "--out", str(tmp_path / "o")]) == 1
    assert "accuracy is 0.8 in" in capsys.readouterr().err
    with pytest.raises(DataError, match="neither a git revision nor an experiment"):
        read_run(repo, "no-such-run")
