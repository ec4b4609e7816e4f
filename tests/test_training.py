"""Training: validation split, known-answer training, resume after an interruption, metrics, bad input."""

import json

import numpy as np
import pytest
import torch

from advaudio.config import params_from_dict
from advaudio.errors import ConfigError, DataError
from advaudio.features.store import open_features, open_split, read_meta
from advaudio.training.data import train_val_rows
from advaudio.training.fake_features import write_fake_features
from advaudio.resume import ResumeFolder
import advaudio.training.run as run_module
from advaudio.training.run import train_victim

TRAIN_KEYS = {"test_accuracy", "macro_f1", "val_accuracy_mean", "val_accuracy_std", "epochs", "seconds",
              "images_per_second", "n_train", "n_test", "n_parameters"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """4 classes, 16x16, 4 folds (fold 1 = test), 2 augmentations."""
    return open_features(write_fake_features(tmp_path_factory.mktemp("features"), sources_per_class=16))


def _params(**train):
    base = {"epochs": 8, "batch_size": 16, "lr": 0.003, "patience": 10}
    return params_from_dict({"model": "resnet56", "device": "cpu", "train": {**base, **train}})


def test_validation_fold_is_never_trained_on(tiny):
    train_rows, val_rows = train_val_rows(tiny.train, val_fold=2)
    assert set(tiny.train.fold[val_rows]) == {2}
    assert tiny.train.original[val_rows].all()
    assert not np.isin(train_rows, np.flatnonzero(tiny.train.fold == 2)).any()
    assert len(train_rows) + (tiny.train.fold == 2).sum() == len(tiny.train)
    with pytest.raises(ConfigError, match=r"train.val_fold = 1 .*choose from \[2, 3, 4\]"):
        train_val_rows(tiny.train, val_fold=1)


def test_tiny_separable_problem_reaches_high_accuracy(tiny):
    torch.set_num_threads(1)
    outcome = train_victim(params=_params(), features=tiny, progress=False)
    m = outcome.metrics
    assert TRAIN_KEYS <= set(m)
    assert all(isinstance(v, (int, float)) and np.isfinite(v) for v in m.values())
    assert m["test_accuracy"] >= 0.9
    assert m["n_train"] == len(tiny.train) and m["n_test"] == len(tiny.test)
    assert outcome.config["class_names"] == tiny.class_names
    assert json.loads(json.dumps(outcome.config)) == outcome.config


class _Interrupt(RuntimeError):
    pass


def _folder(path, inputs=None) -> ResumeFolder:
    return ResumeFolder(path, inputs=inputs or {"train": "1"}, then="training starts from its first epoch")


def test_resume_continues_at_the_right_epoch(tiny, tmp_path):
    torch.set_num_threads(1)
    params = _params(epochs=3)
    reference = train_victim(params=params, features=tiny, progress=False)

    seen = []

    def crash_after_two(record):
        seen.append(record["epoch"])
        if record["epoch"] == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_victim(params=params, features=tiny, resume=_folder(tmp_path), on_epoch=crash_after_two,
                     progress=False)
    assert (tmp_path / "state.pt").is_file()
    resumed = train_victim(params=params, features=tiny, resume=_folder(tmp_path),
                           on_epoch=lambda r: seen.append(r["epoch"]), progress=False)
    assert seen == [1, 2, 1, 2, 3]  # the resumed run replays the saved epochs to its logger, then goes on
    assert resumed.metrics["epochs"] == 3
    for (k, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    # a state saved under other inputs (here: another epoch count) is not resumed
    with pytest.raises(_Interrupt):
        train_victim(params=params, features=tiny, resume=_folder(tmp_path), on_epoch=crash_after_two,
                     progress=False)
    seen.clear()
    train_victim(params=_params(epochs=1), features=tiny, resume=_folder(tmp_path, {"train": "epochs 1"}),
                 on_epoch=lambda r: seen.append(r["epoch"]), progress=False)
    assert seen == [1]


_TIMINGS = ("epoch_seconds", "images_per_second")


def _untimed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in _TIMINGS} for r in records]


@pytest.mark.parametrize("crash_at", [2, 3, 5])  # inside the first fold, on its last epoch, inside the last fold
def test_a_resumed_run_logs_the_uninterrupted_runs_epochs(tiny, tmp_path, crash_at):
    # a logger started empty after the interruption (DVCLive's Live(resume=False)) must end with the rows of the
    # uninterrupted run, even when the crash falls between saving an epoch's state and logging it
    torch.set_num_threads(1)
    params = _params(epochs=2, cross_validate=True)
    whole: list[dict] = []
    train_victim(params=params, features=tiny, on_epoch=whole.append, progress=False)
    assert [r["epoch"] for r in whole] == [1, 2, 1, 2, 1, 2]

    count = iter(range(1, 100))

    def crash(record):
        if next(count) == crash_at:
            raise _Interrupt  # the state of this epoch is saved, its record never logged

    with pytest.raises(_Interrupt):
        train_victim(params=params, features=tiny, resume=_folder(tmp_path), on_epoch=crash, progress=False)
    logged: list[dict] = []
    resumed = train_victim(params=params, features=tiny, resume=_folder(tmp_path), on_epoch=logged.append,
                           progress=False)
    assert _untimed(logged) == _untimed(whole)
    assert resumed.metrics["epochs"] == len(logged) == 6


def _hostile(path, marker):
    """A torch file whose unpickling would create ``marker``."""
    torch.save({"val_accs": [], "payload": _Payload(marker)}, path)


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _tamper(blob: dict, kind: str) -> None:
    """Change one thing inside the loaded state ``blob`` of this training."""
    state = blob
    fit = state["fit"]
    first = next(k for k in fit["model"] if k.endswith(".weight"))
    moments = fit["optimizer"]["state"][0]  # Adam's, of the first parameter
    if kind == "epoch a string":
        fit["epoch"] = "seven"
    elif kind == "a weight of another shape":
        fit["model"][first] = torch.zeros(3, 3)
    elif kind == "no optimizer":
        del fit["optimizer"]
    elif kind == "NaN weights":
        fit["model"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                        for k, v in fit["model"].items()}
    elif kind == "NaN optimizer moments":
        moments["exp_avg_sq"] = torch.full_like(moments["exp_avg_sq"], float("nan"))
    elif kind == "optimizer moments of another shape":
        moments["exp_avg"] = torch.zeros(3, 3)
    elif kind == "optimizer moments missing":
        del moments["exp_avg"]
    elif kind == "scheduler mangled":
        fit["scheduler"]["last_epoch"] = "one"
    elif kind == "rng mangled":
        fit["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)
    elif kind == "fold index ahead":
        state["fold_index"] = 2
    elif kind == "history cut":
        fit["history"] = []


TAMPERED = {  # kind -> what the one line must say
    "epoch a string": "state['fit']['epoch'] is 'seven', not a count",
    "a weight of another shape": "state['fit']['model'] does not fit this training (RuntimeError",
    "no optimizer": "state['fit'] lacks ['optimizer']",
    "NaN weights": "state['fit']['model'][",
    "NaN optimizer moments": "state['fit']['optimizer']['state'][0]['exp_avg_sq'] holds NaN or inf",
    "optimizer moments of another shape": "state['fit']['optimizer'] does not fit this training (RuntimeError",
    "optimizer moments missing": "state['fit']['optimizer'] does not fit this training (KeyError",
    "scheduler mangled": "state['fit']['scheduler'] does not fit this training (TypeError",
    "rng mangled": "state['fit']['rng'] does not fit this training",
    "fold index ahead": "it is at fold index 2 with 0 of 1 folds finished",
    "history cut": "it is at epoch 1 of 2 with 0 epochs of history",
}


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "random", "hostile", "a list", "no fit state",
                                  "state lacks keys", "directory", *TAMPERED])
def test_a_bad_resume_state_is_discarded_and_training_starts_over(tiny, tmp_path, capsys, monkeypatch, kind):
    torch.set_num_threads(1)
    params = _params(epochs=2)
    resume_dir = tmp_path / "train_resume"
    state = resume_dir / "state.pt"

    def crash_after_one(record):
        raise _Interrupt

    with pytest.raises(_Interrupt):  # a real state of this training, to corrupt
        train_victim(params=params, features=tiny, resume=_folder(resume_dir), on_epoch=crash_after_one,
                     progress=False)
    good = torch.load(state, weights_only=True)
    marker = tmp_path / "pwned"
    if kind == "text":
        state.write_text("epoch: 1\nnot a torch file\n")
    elif kind == "empty":
        state.write_bytes(b"")
    elif kind == "truncated":
        state.write_bytes(state.read_bytes()[:1000])
    elif kind == "random":
        state.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "hostile":
        _hostile(state, marker)
    elif kind == "a list":
        torch.save([1, 2, 3], state)
    elif kind == "no fit state":
        torch.save({k: v for k, v in good.items() if k != "fit"}, state)
    elif kind == "state lacks keys":
        torch.save({"val_accs": []}, state)
    elif kind == "directory":
        state.unlink()
        state.mkdir()
    else:
        _tamper(good, kind)
        torch.save(good, state)
    capsys.readouterr()
    trained, real_save = [], run_module._save_state

    def spy(resume, context, fit_state):  # the epochs this run trains (a resumed run replays the saved ones)
        trained.append(fit_state["epoch"])
        real_save(resume, context, fit_state)

    monkeypatch.setattr(run_module, "_save_state", spy)
    seen = []
    outcome = train_victim(params=params, features=tiny, resume=_folder(resume_dir),
                           on_epoch=lambda r: seen.append(r["epoch"]), progress=False)
    err = capsys.readouterr().err
    assert seen == [1, 2] and trained == [1, 2] and outcome.metrics["epochs"] == 2  # started over, not blocked
    assert all(torch.isfinite(v).all() for v in outcome.model.state_dict().values())
    assert f"{state}: discarded (" in err and "training starts from its first epoch" in err, err
    assert "weights_only" not in err and len(err.strip().splitlines()) == 1
    if kind == "hostile":
        assert "may be hostile" in err
    if kind in TAMPERED:
        assert TAMPERED[kind] in err, err
    if kind == "NaN weights":
        assert "holds NaN or inf" in err
    assert not marker.exists()
    assert torch.load(state, weights_only=True)["fit"]["epoch"] == 2  # replaced by this training's state


def test_cross_validation_reports_mean_and_std(tiny):
    torch.set_num_threads(1)
    m = train_victim(params=_params(epochs=1, cross_validate=True), features=tiny, progress=False).metrics
    assert m["n_folds"] == 3 and m["epochs"] == 3
    assert 0.0 <= m["val_accuracy_std"] <= m["val_accuracy_mean"] <= 1.0


def test_bad_params_fail_with_the_allowed_set():
    with pytest.raises(ConfigError, match=r"train.lr = -0.1 is out of range"):
        params_from_dict({"train": {"lr": -0.1}})
    with pytest.raises(ConfigError, match=r"train.optimizer 'adagrad' is not allowed; choose from \['adam'"):
        params_from_dict({"train": {"optimizer": "adagrad"}})
    with pytest.raises(ConfigError, match=r"unknown model 'vgg19'; choose from \['alexnet', 'googlenet'"):
        from advaudio.models import MODELS

        MODELS.get("vgg19")


def test_bad_feature_files_are_named(tmp_path):
    with pytest.raises(DataError, match="meta.json"):
        open_split(tmp_path, "test", meta=read_meta(tmp_path))
    write_fake_features(tmp_path, sources_per_class=2)
    np.save(tmp_path / "test" / "spectrogram-00000.npy", np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(DataError, match=r"spectrogram-00000.npy.*expected float16 \(2, 16, 16\)"):
        open_split(tmp_path, "test", meta=read_meta(tmp_path))
    (tmp_path / "test" / "spectrogram-00000.npy").unlink()
    with pytest.raises(DataError, match=r"spectrogram-00000.npy' not found"):
        open_features(tmp_path)
