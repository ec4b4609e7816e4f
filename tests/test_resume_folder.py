"""One resume mechanism (advaudio.resume): a stage's state is valid for exactly the stage's DVC deps and params."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from advaudio.errors import DataError
from advaudio.resume import INPUTS_FILE, ResumeFolder, changed_inputs, open_resume_folder, stage_inputs

REPO = Path(__file__).resolve().parents[1]
RESUMABLE = ("spectrogram", "train", "attack@original", "attack@original_bounded", "attack@retrained_bounded", "attack@retrained")


def dvc_tree(root: Path, *, stages: dict, params: dict) -> Path:
    """A DVC project (no git) at ``root`` with ``stages`` in dvc.yaml and ``params`` in params.yaml."""
    from dvc.repo import Repo

    root.mkdir(parents=True, exist_ok=True)
    Repo.init(str(root), no_scm=True).close()
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.fixture
def tree(tmp_path):
    root = dvc_tree(tmp_path / "repo", params={"model": "vgg16", "train": {"lr": 0.1, "workers": 2}, "other": 1},
                    stages={"fit": {"cmd": "python fit.py", "deps": ["fit.py", "data"],
                                    "params": ["model", "train"], "outs": ["out"]},
                            "each": {"foreach": {"a": {"file": "fit.py"}},
                                     "do": {"cmd": "python x.py ${key}", "deps": ["${item.file}"]}}})
    (root / "fit.py").write_text("print('fit')\n")
    (root / "data").mkdir()
    (root / "data" / "x.txt").write_text("1\n")
    return root


def test_stage_inputs_name_every_dep_and_param_of_the_stage_and_nothing_else(tree):
    inputs = stage_inputs("fit", root=tree, extra={"device": "cpu"})
    assert set(inputs) == {"fit.py", "data", "param:model", "param:train", "extra:device"}
    assert set(stage_inputs("each@a", root=tree)) == {"fit.py"}  # foreach and ${...} resolved by DVC


@pytest.mark.parametrize("edit, changed", [
    (lambda root: (root / "fit.py").write_text("print('fit')  # edited\n"), ["fit.py"]),
    (lambda root: (root / "data" / "new.txt").write_text("2\n"), ["data"]),  # a file added to a folder dep
    (lambda root: (root / "data" / "x.txt").write_text("3\n"), ["data"]),
    (lambda root: shutil.rmtree(root / "data"), ["data"]),
    (lambda root: _set_param(root, "train", {"lr": 0.2, "workers": 2}), ["param:train"]),
    (lambda root: _set_param(root, "model", "alexnet"), ["param:model"]),
    (lambda root: _set_param(root, "other", 2), []),  # not a param of the stage
    (lambda root: (root / "unrelated.txt").write_text("x\n"), []),  # not a dep
])
def test_an_edit_to_any_dep_or_param_changes_exactly_that_input(tree, edit, changed):
    before = stage_inputs("fit", root=tree)
    edit(tree)
    assert changed_inputs(before, stage_inputs("fit", root=tree)) == changed


def test_ignored_params_keys_and_extra_facts(tree):
    before = stage_inputs("fit", root=tree, ignore=["train.workers"], extra={"device": "cpu"})
    _set_param(tree, "train", {"lr": 0.1, "workers": 8})
    assert changed_inputs(before, stage_inputs("fit", root=tree, ignore=["train.workers"], extra={"device": "cpu"})) == []
    assert changed_inputs(before, stage_inputs("fit", root=tree, ignore=["train.workers"],
                                               extra={"device": "cuda"})) == ["extra:device"]


def test_an_unknown_stage_is_named(tree):
    with pytest.raises(DataError, match="cannot name the inputs of stage 'fitt'.*not found"):
        stage_inputs("fitt", root=tree)
    with pytest.raises(DataError, match="cannot name the inputs of stage 'fit'"):
        stage_inputs("fit", root=tree / "data")  # not a DVC project


def _set_param(root: Path, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_folder_saved_under_other_inputs_is_discarded_with_what_changed(tmp_path, capsys):
    folder = ResumeFolder(tmp_path / "train", inputs={"a.py": "1", "param:x": "2"}, then="training starts over")
    folder.save("state.pt", lambda fh: fh.write(b"state"))
    assert ResumeFolder(tmp_path / "train", inputs={"a.py": "1", "param:x": "2"}, then="-").path("state.pt").is_file()
    assert capsys.readouterr().err == ""
    again = ResumeFolder(tmp_path / "train", inputs={"a.py": "9", "param:x": "2", "b.py": "3"}, then="training starts over")
    err = capsys.readouterr().err
    assert again.discarded and not again.path("state.pt").exists()
    assert err == (f"{tmp_path / 'train'}: discarded (saved under other inputs: a.py, b.py changed); "
                   "training starts over\n")
    assert json.loads((tmp_path / "train" / INPUTS_FILE).read_text()) == {"a.py": "9", "param:x": "2", "b.py": "3"}


@pytest.mark.parametrize("record", [None, b"\xff\xfe garbage", b"[1, 2]", b'{"a.py": 1}'])
def test_a_folder_without_a_readable_record_of_its_inputs_is_discarded(tmp_path, capsys, record):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "old.npz").write_bytes(b"old")
    if record is not None:
        (tmp_path / "s" / INPUTS_FILE).write_bytes(record)
    folder = ResumeFolder(tmp_path / "s", inputs={"a.py": "1"}, then="it starts over")
    assert folder.discarded and not (tmp_path / "s" / "old.npz").exists()
    assert "discarded" in capsys.readouterr().err


def test_a_file_the_reader_refuses_is_deleted_with_its_reason(tmp_path, capsys):
    folder = ResumeFolder(tmp_path / "s", inputs={}, then="the stage starts over")
    folder.save("x.bin", lambda fh: fh.write(b"bad"))

    def read(path):
        raise DataError(f"{path}: not a state")

    assert folder.load("x.bin", read, then="x starts over") is None
    assert capsys.readouterr().err == f"{folder.path('x.bin')}: discarded ({folder.path('x.bin')}: not a state); x starts over\n"
    assert not folder.path("x.bin").exists()
    assert folder.load("missing.bin", read) is None
    folder.save("y.bin", lambda fh: fh.write(b"ok"))
    assert folder.load("y.bin", lambda path: path.read_bytes()) == b"ok"


def test_clear_removes_the_folder_and_an_empty_resume_root(tmp_path):
    a = ResumeFolder(tmp_path / ".resume" / "a", inputs={}, then="-")
    b = ResumeFolder(tmp_path / ".resume" / "b", inputs={}, then="-")
    a.clear()
    assert not a.directory.exists() and (tmp_path / ".resume").is_dir()
    b.clear()
    assert not (tmp_path / ".resume").exists()


@pytest.mark.parametrize("stage", RESUMABLE)
def test_each_resumable_stage_is_keyed_by_exactly_its_dvc_deps_and_params(stage):
    """The repository's own stages: the inputs are DVC's deps and params of the stage, one for one."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        (found,) = repo.stage.collect(stage)
        deps = {d.def_path for d in found.deps if not hasattr(d, "read_params")}
        params = {f"param:{k}" for d in found.deps if hasattr(d, "read_params") for k in d.read_params()}
    inputs = stage_inputs(stage, root=REPO)
    assert set(inputs) == deps | params
    assert any(k.startswith("src/advaudio/") for k in inputs) and params


def test_a_stage_outside_a_dvc_project_keeps_no_resume_state_and_says_so(tree, tmp_path, capsys):
    assert open_resume_folder("fit", root=tmp_path / "elsewhere", then="-") is None
    assert "is not a DVC project (or DVC is not installed): no resume state is kept" in capsys.readouterr().err
    folder = open_resume_folder("fit", root=tree, then="-", extra={"device": "cpu"})
    assert folder.directory == tree / "build" / ".resume" / "fit"
    assert folder.inputs == stage_inputs("fit", root=tree, extra={"device": "cpu"})


def test_the_commands_read_without_dvc_equal_dvcs():
    """The GPU smoke run's machine has no DVC: its reading of dvc.yaml's commands must be DVC's."""
    import shlex

    from advaudio.evaluation import stage_commands

    with_dvc = stage_commands.stage_commands(root=REPO)
    without = {name: shlex.split(cmd) for name, cmd in stage_commands._yaml_commands(REPO).items() if cmd}
    assert with_dvc == without and "attack@retrained" in with_dvc
