"""Crash-safe attack stages: a search resumed after any rung equals an uninterrupted one; kill -9 and rerun."""

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from advaudio.evaluation.budget import BudgetResult, SearchState
from advaudio.evaluation.search_state import read_search_state, state_file, write_search_state
from advaudio.resume import ResumeFolder
from kill_points import start_stage_killed_after
from stage_trees import make_dvc_project, stage_args
from toy_attack_models import run, smooth_model, victims

REPO = Path(__file__).resolve().parents[1]


class Interrupted(Exception):
    pass


def _same(a: BudgetResult, b: BudgetResult) -> None:
    np.testing.assert_array_equal(a.adv, b.adv)
    np.testing.assert_array_equal(a.l2, b.l2)
    np.testing.assert_array_equal(a.success, b.success)
    assert (a.level, a.fr_per_level, a.gradient_calls, a.forward_calls, a.queries) == \
        (b.level, b.fr_per_level, b.gradient_calls, b.forward_calls, b.queries)


def _same_state(a: SearchState, b: SearchState) -> None:
    _same(a.result, b.result)
    assert a.finished == b.finished
    assert (a.pool_top1 is None) == (b.pool_top1 is None)
    if a.pool_top1 is not None:
        np.testing.assert_array_equal(a.pool_top1, b.pool_top1)


def _save(folder: ResumeFolder, state: SearchState) -> None:
    folder.save(state_file(state.result.name), lambda fh: write_search_state(fh, state))


def _load(folder: ResumeFolder, name: str, *, shape, n_levels: int) -> SearchState | None:
    return folder.load(state_file(name), lambda path: read_search_state(path, name=name, shape=shape,
                                                                        n_levels=n_levels),
                       then=f"{name} starts from its first rung")


@pytest.mark.parametrize("name, ladder", [
    ("bim_b", [{"epsilon": e, "steps": 5, "rel_stepsize": 0.25} for e in (0.2, 0.5, 3.0)]),
    ("pia", [{"epsilon": e, "steps": 20, "samples": 20, "lr": 0.05} for e in (0.05, 0.2, 0.5)]),
    ("apgd_ce", [{"epsilon": e, "steps": 5} for e in (0.05, 0.2, 1.0)]),
])
def test_a_search_resumed_after_any_rung_equals_the_uninterrupted_one(name, ladder):
    model = smooth_model()
    x, y, t = victims(model, n=6)
    states: list[SearchState] = []
    full = run(name, model, x, y, t, ladder=ladder, on_rung=states.append)
    assert len(states) >= 2 and states[-1].finished and not states[0].finished
    _same(states[-1].result, full)
    for saved in states[:-1]:
        def stop(state, after=saved.result.level):
            if state.result.level > after:
                raise Interrupted
        with pytest.raises(Interrupted):  # what a crash right after the next rung would leave behind
            run(name, model, x, y, t, ladder=ladder, resume=saved, on_rung=stop)
        _same(run(name, model, x, y, t, ladder=ladder, resume=saved), full)
    # a finished search is not rerun
    assert run(name, model, x, y, t, ladder=ladder, resume=states[-1]) is states[-1].result


@pytest.mark.parametrize("name, ladder", [
    ("bim_b", [{"epsilon": 1.0, "steps": 3, "rel_stepsize": 0.25}]),
    ("pia", [{"epsilon": 0.2, "steps": 5, "samples": 10, "lr": 0.05}]),  # saves the starting pool's classes
])
def test_a_search_state_round_trips_and_states_of_other_inputs_are_dropped(tmp_path, name, ladder):
    model = smooth_model()
    x, y, t = victims(model, n=4)
    states: list[SearchState] = []
    run(name, model, x, y, t, ladder=ladder, on_rung=states.append)
    (state,) = states
    assert (state.pool_top1 is not None) == (name == "pia")
    folder = ResumeFolder(tmp_path / "attack@original", inputs={"a": "1"}, then="-")
    _save(folder, state)
    fits = {"shape": tuple(x.shape), "n_levels": 1}
    _same_state(_load(ResumeFolder(tmp_path / "attack@original", inputs={"a": "1"}, then="-"), name, **fits), state)
    assert _load(ResumeFolder(tmp_path / "attack@original", inputs={"a": "2"}, then="-"), name, **fits) is None


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bad_state(path: Path, kind: str, *, good: Path, marker: Path) -> None:
    """Turn the saved state ``path`` (a copy of ``good``) into a bad one of ``kind``."""
    saved = dict(np.load(good, allow_pickle=False))
    if kind == "text":
        path.write_text("level: 2\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "hostile pickle":
        with open(path, "wb") as fh:
            pickle.dump({"state": _Payload(marker)}, fh)
    elif kind == "hostile object array":
        np.savez(path.with_suffix(""), state=np.array([_Payload(marker)], dtype=object))
    elif kind == "an .npy":
        with open(path, "wb") as fh:
            np.save(fh, saved["adv"])
    elif kind == "no state":
        np.savez(path.with_suffix(""), **{k: v for k, v in saved.items() if k != "state"})
    elif kind == "state not JSON":
        np.savez(path.with_suffix(""), **{**saved, "state": np.array("{level: 2")})
    elif kind == "another attack":
        state = json.loads(str(saved["state"]))
        np.savez(path.with_suffix(""), **{**saved, "state": np.array(json.dumps({**state, "name": "cw"}))})
    elif kind == "other victims":
        np.savez(path.with_suffix(""), **{**saved, "adv": saved["adv"][:2], "l2": saved["l2"][:2]})
    elif kind == "wrong types":
        state = json.loads(str(saved["state"]))
        np.savez(path.with_suffix(""), **{**saved, "state": np.array(json.dumps({**state, "level": "2"}))})
    elif kind in VALUES:  # the right keys, types and shapes; values no search writes
        state = json.loads(str(saved["state"]))
        adv, l2, success = saved["adv"].copy(), saved["l2"].copy(), saved["success"].copy()
        if kind == "NaN adversarial":
            adv[2, 0, 0, :3] = np.nan
        elif kind == "NaN norm":
            l2[1] = np.nan
        elif kind == "a norm of an unfooled victim":
            success[1] = False
        elif kind == "NaN seconds":
            state["seconds"] = float("nan")  # json writes NaN, and reads it back
        elif kind == "NaN fooling rate":
            state["fr_per_level"] = [float("nan")]
        np.savez(path.with_suffix(""), **{**saved, "adv": adv, "l2": l2, "success": success,
                                          "state": np.array(json.dumps(state))})


VALUES = {"NaN adversarial": "'adv' of victim 2 holds NaN or inf",
          "NaN norm": "'l2' of victim 1 is nan with success True",
          "a norm of an unfooled victim": "'l2' of victim 1 is 0.1",
          "NaN seconds": "'seconds' is nan", "NaN fooling rate": "'fr_per_level' [nan] is not a list of fractions"}


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "hostile pickle", "hostile object array",
                                  "an .npy", "no state", "state not JSON", "another attack", "other victims",
                                  "wrong types", *VALUES])
def test_a_bad_saved_search_state_is_discarded_and_the_attack_starts_over(tmp_path, capsys, kind):
    model = smooth_model()
    x, y, t = victims(model, n=4)
    ladder = [{"epsilon": e, "steps": 3, "rel_stepsize": 0.25} for e in (0.2, 1.0)]
    states: list[SearchState] = []
    run("bim_b", model, x, y, t, ladder=ladder, on_rung=states.append)
    store = ResumeFolder(tmp_path / "original", inputs={"a": "1"}, then="-")
    _save(store, states[0])
    first = states[0].result
    assert not first.success.all() and first.success.any()  # inf norms of the unfooled ones are kept
    _same_state(_load(store, "bim_b", shape=tuple(x.shape), n_levels=2), states[0])
    path = tmp_path / "original" / "bim_b.npz"
    good = tmp_path / "good.npz"
    good.write_bytes(path.read_bytes())
    marker = tmp_path / "pwned"
    _bad_state(path, kind, good=good, marker=marker)
    capsys.readouterr()
    assert _load(store, "bim_b", shape=tuple(x.shape), n_levels=2) is None
    err = capsys.readouterr().err
    assert f"{path}: discarded (" in err and "bim_b starts from its first rung" in err, err
    assert len(err.strip().splitlines()) == 1 and "allow_pickle=True" not in err
    assert VALUES.get(kind, "") in err, err
    assert not path.exists() and not marker.exists()


def _stage_tree(root: Path) -> None:
    from advaudio.models.checkpoint import make_config, save_checkpoint
    from advaudio.models import build_model
    from advaudio.training.fake_features import write_fake_features

    write_fake_features(root / "build" / "features", sources_per_class=4, size=(16, 16))
    torch.manual_seed(0)
    model = build_model("alexnet", n_classes=4, input_shape=[1, 16, 16]).eval()
    meta = json.loads((root / "build" / "features" / "meta.json").read_text())
    config = make_config(model="alexnet", n_classes=meta["n_classes"], class_names=meta["class_names"],
                         input_shape=meta["input_shape"], representation=meta["representation"],
                         scaling=meta["scaling"], params={"seed": 0})
    save_checkpoint(root / "build" / "model" / "model.pt", model=model, config=config)
    (root / "profiles").mkdir()
    for p in (REPO / "profiles").glob("*.yaml"):
        (root / "profiles" / p.name).write_text(p.read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["device"] = "cpu"
    params["attack"].update(n_victims=4, n_examples=2, target_fooling_rate=1.0, ladders={
        "bim_a": [{"epsilon": e, "steps": 10, "rel_stepsize": 0.1} for e in (0.05, 0.2, 1.0)],
        "bim_b": [{"epsilon": e, "steps": 10, "rel_stepsize": 0.1} for e in (0.05, 0.2, 1.0)],
        "jsma": [{"max_iterations": 20, "theta": 0.1}, {"max_iterations": 60, "theta": 0.1}],
        "deepfool": [{"steps": 50}],
        "cw": [{"c": 1.0, "steps": 20, "binary_search_steps": 2}],
        "pia": [{"epsilon": e, "steps": 30, "samples": 20} for e in (0.1, 0.3)],
        "apgd_ce": [{"epsilon": e, "steps": 10} for e in (0.05, 0.2, 1.0)],  # the reference attacks
        "apgd_dlr": [{"epsilon": e, "steps": 10} for e in (0.05, 1.0)],
    })
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    make_dvc_project(root)
    subprocess.run([sys.executable, str(REPO / "stages" / "victims.py"), *stage_args("victims")], cwd=root,
                   env=dict(os.environ, ADVAUDIO_NO_TCMALLOC="1"), check=True, capture_output=True)


def _stage(root: Path) -> subprocess.Popen:
    env = dict(os.environ, ADVAUDIO_NO_TCMALLOC="1")
    return subprocess.Popen([sys.executable, str(REPO / "stages" / "attack.py"), *stage_args("attack@original")],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _metrics(root: Path) -> dict:
    m = json.loads((root / "metrics" / "attack_original.json").read_text())
    for entry in [*m.values(), *m.get("reference", {}).values()]:
        if isinstance(entry, dict):
            entry.pop("seconds", None)
    return m


@pytest.mark.slow
def test_kill_9_in_the_middle_of_an_attack_stage_then_rerun_gives_the_uninterrupted_metrics(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    for root in (whole, broken):
        root.mkdir()
        _stage_tree(root)
    out, _ = _stage(whole).communicate(timeout=600)
    assert "resumes" not in out and (whole / "metrics" / "attack_original.json").is_file(), out
    assert not (whole / "build" / ".resume").exists()  # cleared once the outputs are written

    # the stage kills itself right after it saved the first state of its second attack
    proc = start_stage_killed_after(
        "attack.py", stage_args("attack@original"), cwd=broken, env=dict(os.environ, ADVAUDIO_NO_TCMALLOC="1"),
        module="advaudio.resume", qualname="ResumeFolder.save", key="args[1]", after=2, distinct=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, out
    assert len(list((broken / "build" / ".resume" / "attack@original").glob("*.npz"))) == 2
    assert not (broken / "metrics" / "attack_original.json").exists()  # nothing that looks finished
    out, _ = _stage(broken).communicate(timeout=600)
    assert "resumes after rung" in out, out
    assert _metrics(broken) == _metrics(whole)
    for name in ("attacks/original/results.npz", "victims/victims.npz"):
        with np.load(whole / "build" / name) as a, np.load(broken / "build" / name) as b:
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
