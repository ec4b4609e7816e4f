"""The grid: the collector on recorded `dvc exp show --json` output, and (slow) the runner on a toy repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advaudio.errors import DataError
from advaudio.report import grid as grid_cli
from advaudio.report import layout
from advaudio.report.collect import collect_grid, grid_json, grid_markdown, records_from_exp_show

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


def test_queue_commands_sweep_models_and_representations():
    cmds = grid_cli.queue_commands(models=["resnet56", "vgg16"], representations=["stft"],
                                   datasets=["esc50", None], dataset_dirs={"esc50": "data/ESC-50"})
    assert cmds[0] == ["exp", "run", "--queue", "-S", "model=resnet56,vgg16", "-S", "representation=stft",
                       "-S", "dataset=esc50", "-S", "dataset_dir=data/ESC-50"]
    assert cmds[1] == cmds[0][:7]


def test_cli_rejects_unknown_model(capsys):
    with pytest.raises(SystemExit) as exc:
        grid_cli.main(["--models", "resnet65"])
    assert exc.value.code == 2 and "resnet65" in capsys.readouterr().err


# --- a toy DVC repo with the same params and summary keys as advaudio --------------------------------

_FEATURES = """\
import pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
with open({counter!r}, "a") as fh:
    fh.write(p["representation"] + "\\n")
pathlib.Path("build").mkdir(exist_ok=True)
pathlib.Path("build/features.txt").write_text(p["representation"] + "\\n")
"""
_CELL = """\
import json, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
if (p["model"], p["representation"]) == tuple({fail!r}):
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


def make_toy_repo(root: Path, *, counter: Path, fail: tuple[str, str] = ("", "")) -> Path:
    """A git + DVC repo whose `features` stage depends only on the representation (shared by models)."""
    repo = root / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text(
        "dataset: synth\ndataset_dir: build/synth\nrepresentation: stft\nmodel: resnet56\n"
    )
    (repo / "features.py").write_text(_FEATURES.format(counter=str(counter)))
    (repo / "cell.py").write_text(_CELL.format(fail=list(fail)))
    (repo / "dvc.yaml").write_text(_DVC_YAML)
    (repo / ".gitignore").write_text("/build/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "toy"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    return repo


@pytest.mark.slow
def test_grid_runs_a_2x1_grid_end_to_end_and_reuses_the_shared_stage(tmp_path):
    counter = tmp_path / "features_runs.txt"
    repo = make_toy_repo(tmp_path, counter=counter)
    status = grid_cli.main(["--models", "resnet56", "vgg16", "--representations", "stft", "--jobs", "1",
                            "--repo", str(repo)])
    assert status == 0
    assert counter.read_text().splitlines() == ["stft"]  # computed once, restored from the run-cache once
    tables = json.loads((repo / "reports" / "grid" / "tables.json").read_text())
    assert tables["table3"]["synth"]["stft"] == {"resnet56": 1.25, "vgg16": 1.25}
    assert tables["table1"]["synth"]["stft"]["vgg16"] == {"accuracy": 0.74, "accuracy_drop": 8.0}
    text = (repo / "reports" / "grid" / "tables.md").read_text()
    assert "| Synth     | STFT" in text and "**78.00, (08.00)**" in text


def test_cells_never_print_negative_zero():
    # 0.9125 - 0.9125 computed from float32 accuracies can be -1e-15 points: the cell must read (00.00).
    assert layout.format_table1(accuracy_percent=91.25, drop_points=-1e-13) == "91.25, (00.00)"
    assert layout.format_table1(accuracy_percent=85.0, drop_points=-12.5) == "85.00, (-12.50)"
    assert layout.format_table1(accuracy_percent=67.83, drop_points=6.89) == "67.83, (06.89)"
    assert layout.format_table2(fooling_rate_percent=-1e-9) == "0.00"
    assert layout.format_table3(eps_ratio=-1e-9) == "0.000"
