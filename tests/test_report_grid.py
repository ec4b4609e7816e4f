"""The grid: the collector on recorded `dvc exp show --json` output, and (slow) the runner on a toy repo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from advaudio.errors import DataError
from advaudio.report import grid as grid_cli
from advaudio.report import layout
from advaudio.report.collect import collect_grid, grid_json, grid_markdown, records_from_exp_show
from toy_grid import make_toy_repo

GOLDEN = Path(__file__).parent / "golden"
# Recorded from a toy repo (make_toy_repo below, 2 models x 2 representations on esc50, one cell made
# to fail) with DVC 3.67: `dvc exp show --json`.
EXP_SHOW = GOLDEN / "exp_show.json"


def _records():
    return records_from_exp_show(json.loads(EXP_SHOW.read_text()))


def test_records_parse_params_metrics_and_failures():
    records = _records()
    by_cell = {r.cell: r for r in records}
    assert len(records) == 4
    ok = by_cell[("esc50", "stft", "resnet56")]
    assert ok.state == "success" and ok.metrics["accuracy"] == pytest.approx(0.78)
    assert ok.baseline == "ef6268e8fc8b67953ca4db73135f26dc8bf3fd04"  # the commit it ran from
    failed = by_cell[("esc50", "dwt", "vgg16")]
    assert failed.state == "failed" and failed.metrics == {}  # DVC shows the baseline's metrics for it


def test_collector_fills_cells_and_lists_failures():
    grid = collect_grid(records=_records(), datasets=["esc50"], representations=["stft", "dwt"],
                        models=["resnet56", "vgg16"])
    assert set(grid.cells) == {("esc50", "stft", "resnet56"), ("esc50", "stft", "vgg16"), ("esc50", "dwt", "resnet56")}
    assert list(grid.failed) == [("esc50", "dwt", "vgg16")] and grid.missing == []
    tables = grid_json(grid)
    assert tables["table1"]["esc50"]["stft"]["resnet56"] == {"accuracy": 0.78, "accuracy_drop": 8.0}
    assert tables["table3"]["esc50"]["dwt"]["resnet56"] == pytest.approx(1.5)
    assert tables["study"]["table3"]["esc50"]["stft"]["resnet56"] == pytest.approx(2.312)
    json.dumps(tables, allow_nan=False)


def test_collector_markdown_matches_golden_layout():
    grid = collect_grid(records=_records(), datasets=["esc50"], representations=["stft", "dwt"],
                        models=["resnet56", "vgg16"])
    text = grid_markdown(grid)
    golden = GOLDEN / "grid_tables.md"
    if os.environ.get("ADVAUDIO_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_collector_ignores_cells_outside_the_grid_and_reports_missing():
    grid = collect_grid(records=_records(), datasets=["esc50"], representations=["stft"], models=["alexnet", "vgg16"])
    assert list(grid.cells) == [("esc50", "stft", "vgg16")]
    assert grid.missing == [("esc50", "stft", "alexnet")]
    assert "**missing**" in grid_markdown(grid)


def test_collector_takes_the_newest_successful_run():
    data = json.loads(EXP_SHOW.read_text())
    group = next(g for g in data[1]["experiments"] if g["revs"][0]["data"]["params"]["params.yaml"]["data"]["model"]
                 == "resnet56" and g["revs"][0]["data"]["params"]["params.yaml"]["data"]["representation"] == "stft")
    newer = json.loads(json.dumps(group))
    newer["revs"][0]["name"] = "newer"
    newer["revs"][0]["data"]["timestamp"] = "2999-01-01T00:00:00"
    newer["revs"][0]["data"]["metrics"]["metrics/summary.json"]["data"]["accuracy"] = 0.5
    data[1]["experiments"].append(newer)
    grid = collect_grid(records=records_from_exp_show(data), datasets=["esc50"], representations=["stft"],
                        models=["resnet56"])
    assert grid.experiments[("esc50", "stft", "resnet56")] == "newer"
    assert grid.cells[("esc50", "stft", "resnet56")]["accuracy"] == 0.5


def test_exp_show_of_wrong_shape_is_a_clear_error():
    with pytest.raises(DataError, match="expected a JSON list of commits"):
        records_from_exp_show({"workspace": {}})


def test_cli_rejects_unknown_model(capsys):
    with pytest.raises(SystemExit) as exc:
        grid_cli.main(["--models", "resnet65"])
    assert exc.value.code == 2 and "resnet65" in capsys.readouterr().err


@pytest.mark.slow
def test_grid_runs_a_2x1_grid_end_to_end_and_reuses_the_shared_stage(tmp_path):
    counter = tmp_path / "features_runs.txt"
    repo = make_toy_repo(tmp_path, counter=counter)
    status = grid_cli.main(["--models", "resnet56", "vgg16", "--representations", "stft", "--jobs", "1",
                            "--shared-stage", "features", "--repo", str(repo)])
    assert status == 0
    assert counter.read_text().splitlines() == ["stft"]  # computed once, restored from the run-cache once
    tables = json.loads((repo / "reports" / "grid" / "tables.json").read_text())
    assert tables["table3"]["synth"]["stft"] == {"resnet56": 1.25, "vgg16": 1.25}
    assert tables["table1"]["synth"]["stft"]["vgg16"] == {"accuracy": 0.74, "accuracy_drop": 8.0}
    text = (repo / "reports" / "grid" / "tables.md").read_text()
    assert "| Synth     | STFT" in text and "**78.00, (08.00)**" in text
    # a later commit (documentation only) is a new baseline: its cells are missing, the old ones stay collectable
    baseline = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, text=True, capture_output=True,
                              check=True).stdout.strip()
    (repo / "NOTES.md").write_text("a note\n")
    subprocess.run(["git", "add", "NOTES.md"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "notes"], cwd=repo,
                   check=True)
    common = ["--models", "resnet56", "vgg16", "--representations", "stft", "--repo", str(repo), "--collect-only"]
    assert grid_cli.main(common) == 1
    assert grid_cli.main([*common, "--baseline", baseline[:10]]) == 0
    tables = json.loads((repo / "reports" / "grid" / "tables.json").read_text())
    assert {e["baseline"] for e in tables["experiments"]} == {baseline}


def test_cells_never_print_negative_zero():
    # 0.9125 - 0.9125 computed from float32 accuracies can be -1e-15 points: the cell must read (00.00).
    assert layout.format_table1(accuracy_percent=91.25, drop_points=-1e-13) == "91.25, (00.00)"
    assert layout.format_table1(accuracy_percent=85.0, drop_points=-12.5) == "85.00, (-12.50)"
    assert layout.format_table1(accuracy_percent=67.83, drop_points=6.89) == "67.83, (06.89)"
    assert layout.format_table2(fooling_rate_percent=-1e-9) == "0.00"
    assert layout.format_table3(eps_ratio=-1e-9) == "0.000"


@pytest.mark.slow
def test_grid_with_a_dvc_remote_shares_the_shared_stage_through_the_remotes_run_cache(tmp_path, capsys):
    """No shared cache: each task has its own, the prep task pushes the run-cache, the cells pull it."""
    counter = tmp_path / "features_runs.txt"
    repo = make_toy_repo(tmp_path, counter=counter)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    storage = tmp_path / "dvc-storage"
    args = ["--models", "resnet56", "vgg16", "--representations", "stft", "--jobs", "2", "--shared-stage",
            "features", "--git-remote", str(remote), "--dvc-remote", str(storage), "--repo", str(repo)]
    assert grid_cli.main(args) == 0, capsys.readouterr().err
    assert counter.read_text().split() == ["stft"]
    assert any((storage / "runs").rglob("*")), "the prep task pushed no run-cache"
    assert not (repo / ".dvc" / "cache").exists() or not any((repo / ".dvc" / "cache").rglob("runs/*"))
    tables = json.loads((repo / "reports" / "grid" / "tables.json").read_text())
    assert tables["table3"]["synth"]["stft"] == {"resnet56": 1.25, "vgg16": 1.25}
