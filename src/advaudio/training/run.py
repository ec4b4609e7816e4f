"""The ``train`` stage's logic: pick (or rotate) the validation fold, train, keep the best-validation
model, evaluate it on the test split and assemble ``metrics/train.json``."""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from advaudio.config import Params, resolve_device
from advaudio.models import build_model, count_parameters
from advaudio.models.checkpoint import make_config
from advaudio.features.store import FeatureReaders
from advaudio.loading import one_line
from advaudio.training.data import pool_folds, train_val_rows
from advaudio.training.loop import (EpochCallback, autocast_for, evaluate_logits, fit, make_optimizer, make_scheduler,
                                    seed_everything)
from advaudio.training.resume import ResumeStore, code_digest, fingerprint, rng_state, set_rng_state


# what every unfinished state holds (fit() saves it after each epoch with the run's context)
STATE_KEYS = ("val_accs", "best", "epochs_total", "seconds", "images", "records", "fold_index", "fit")


@dataclass
class TrainOutcome:
    """The kept model, its checkpoint config, ``metrics/train.json`` and test predictions."""

    model: nn.Module
    config: dict[str, Any]
    metrics: dict[str, float | int]
    test_labels: np.ndarray
    test_predictions: np.ndarray


def validation_folds(features: FeatureReaders, *, params: Params) -> list[int]:
    """The validation fold(s): every pool fold when cross-validating, else ``train.val_fold``
    (0 = the pool's lowest fold)."""
    folds = pool_folds(features.train)
    if params.train.cross_validate:
        return folds
    return [params.train.val_fold or folds[0]]


def training_fingerprint(features: FeatureReaders, *, params: Params) -> str:
    """Fingerprint of everything a resumable training depends on: the params it reads, the data (through
    ``meta.json``, which holds the SHA-256 of every split's shards) and the code (:func:`code_digest`)."""
    return fingerprint({
        "model": params.model, "seed": params.seed, "device": resolve_device(params.device),
        "split": dataclasses.asdict(params.split), "train": dataclasses.asdict(params.train),
        "meta": features.meta, "n_train": len(features.train), "n_test": len(features.test),
        "code": code_digest(),
    })


def train_victim(
    *,
    params: Params,
    features: FeatureReaders,
    resume_dir: str | Path | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train ``params.model`` on ``features`` per ``params.model_train`` (``train`` with
    ``train.by_model[model]`` applied); resumable through ``resume_dir``.

    ``on_epoch`` gets the record of every epoch of the run once, in order: after a resume the epochs finished
    before the interruption are replayed first, with the values saved in the resume state. A logger started
    empty (DVCLive's ``Live(resume=False)``) therefore ends with the uninterrupted run's rows, whatever the
    moment of the interruption (even between the saving of an epoch's state and its logging).

    The training split is held in memory at the input size when small (:meth:`SplitReader.cached`), else
    streamed batch by batch; the test split is read in batches.

    A saved state that cannot continue this training (:func:`resume_state_problem`: entries missing or of the
    wrong kind, weights or optimizer moments that do not fit the model or hold NaN, ...) is discarded with a
    one-line message on stderr, and the training starts from its first epoch.

    Raises
    ------
    ConfigError
        Bad validation fold or model settings (e.g. pretrained weights not on disk).
    """
    device = resolve_device(params.device)
    cfg = params.model_train
    meta = features.meta
    store = None
    folds = validation_folds(features, params=params)
    if resume_dir is not None:
        store = ResumeStore(resume_dir, fingerprint=training_fingerprint(features, params=params))
    saved = store.load(required=STATE_KEYS, check=lambda state: resume_state_problem(
        state, params=params, meta=meta, n_folds=len(folds))) if store is not None else None
    pool = features.train.cached()
    val_accs: list[float] = list(saved["val_accs"]) if saved else []
    best = saved["best"] if saved else None  # {"val_acc", "state", "fold"} of the best fold so far
    epochs_total, seconds, images = (saved["epochs_total"], saved["seconds"], saved["images"]) if saved else (0, 0.0, 0)
    records: list[dict] = list(saved["records"]) if saved else []  # the epochs of the finished folds
    if saved and on_epoch is not None:
        current = saved["fit"]["history"] if saved["fold_index"] == len(val_accs) else []
        for record in [*records, *current]:
            on_epoch(dict(record))
    for i, val_fold in enumerate(folds):
        if i < len(val_accs):
            continue  # finished before an interruption
        train_rows, val_rows = train_val_rows(features.train, val_fold=val_fold)
        seed_everything(params.seed)
        model = build_model(params.model, n_classes=int(meta["n_classes"]), input_shape=meta["input_shape"],
                            pretrained=cfg.pretrained)
        context = {"val_accs": val_accs, "best": best, "epochs_total": epochs_total, "seconds": seconds,
                   "images": images, "records": records}
        fit_state = saved["fit"] if saved and saved.get("fold_index") == i else None
        result = fit(
            model,
            train=pool.subset(train_rows), val=pool.subset(val_rows), config=cfg, seed=params.seed + i, device=device, resume=store,
            resume_context={**context, "fold_index": i}, resume_state=fit_state, on_epoch=on_epoch,
            progress=progress,
        )
        val_accs.append(float(result.best_val_accuracy))
        records = [*records, *result.history]
        epochs_total += result.epochs
        seconds += result.seconds
        images += result.images_per_second * result.seconds
        if best is None or result.best_val_accuracy > best["val_acc"]:
            best = {"val_acc": float(result.best_val_accuracy), "fold": int(val_fold),
                    "state": {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()}}
    model = build_model(params.model, n_classes=int(meta["n_classes"]), input_shape=meta["input_shape"])
    model.load_state_dict(best["state"])
    model.to(device).eval()
    logits = evaluate_logits(model, features.test, batch_size=max(cfg.batch_size, 256), device=device,
                             channels_last=cfg.channels_last)
    pred, labels = logits.argmax(1).numpy(), features.test.y.numpy()
    if store is not None:
        store.save({"val_accs": val_accs, "best": best, "epochs_total": epochs_total, "seconds": seconds,
                    "images": images, "records": records}, finished=True)
    metrics = {
        "test_accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(f1_score(labels, pred, average="macro", labels=np.arange(int(meta["n_classes"])),
                                   zero_division=0)),
        "val_accuracy_mean": float(np.mean(val_accs)),
        "val_accuracy_std": float(np.std(val_accs)),
        "n_folds": len(val_accs),
        "epochs": int(epochs_total),
        "seconds": float(seconds),
        "images_per_second": float(images / seconds) if seconds > 0 else 0.0,
        "n_train": int(len(features.train)),
        "n_test": int(len(features.test)),
        "n_parameters": int(count_parameters(model)),
    }
    config = make_config(
        model=params.model, n_classes=int(meta["n_classes"]), class_names=features.class_names,
        input_shape=meta["input_shape"], representation=str(meta.get("representation", "")),
        scaling=meta.get("scaling", {}), params=dataclasses.asdict(params),
    )
    return TrainOutcome(model=model, config=config, metrics=metrics, test_labels=labels, test_predictions=pred)


def resume_state_problem(state: Mapping[str, Any], *, params: Params, meta: Mapping[str, Any],
                         n_folds: int) -> str | None:
    """What keeps a saved resume state (holding :data:`STATE_KEYS`) from continuing this training; None if
    nothing. For :meth:`ResumeStore.load`, which discards such a state: a tampered or mangled file whose
    fingerprint still matches must not crash the training half-way or resume it from nonsense.

    Checks every value :func:`train_victim` and :func:`~advaudio.training.loop.fit` read, for its kind and its
    consistency with the folds and epochs of ``params``, then loads the weights, optimizer, scheduler, grad
    scaler and RNG states into copies of what ``fit`` builds and takes one optimizer and scheduler step on
    them (:func:`_fit_load_problem`).

    Parameters
    ----------
    state : mapping
        The saved state.
    params : Params
        This training's params.
    meta : mapping
        The features' ``meta.json`` (``n_classes``, ``input_shape``).
    n_folds : int
        Validation folds of this training.
    """
    fit_state = state.get("fit")
    checks: tuple[Callable[[], str | None], ...] = (
        lambda: _kinds_problem(state, _STATE_KINDS, where="state"),
        lambda: None if state["best"] is None else _kinds_problem(state["best"], _BEST_KINDS, where="state['best']"),
        lambda: _kinds_problem(fit_state, _FIT_KINDS, where="state['fit']"),
        lambda: _progress_problem(state, n_folds=n_folds, n_epochs=params.model_train.epochs),
        lambda: _fit_load_problem(state, params=params, meta=meta),
    )
    for check in checks:
        problem = check()
        if problem:
            return problem
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _record(value: Any) -> bool:
    """An epoch record as ``fit`` writes it: names to numbers (a loss may be inf, so not only finite ones)."""
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, (int, float))
                                           and not isinstance(v, bool) for k, v in value.items())


_KINDS: dict[str, Callable[[Any], bool]] = {
    "a count": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "a finite number >= 0": lambda v: _number(v) and v >= 0,
    "an accuracy": lambda v: _number(v) and 0 <= v <= 1,
    "an accuracy or None": lambda v: v is None or (_number(v) and 0 <= v <= 1),
    "a list of accuracies": lambda v: isinstance(v, list) and all(_number(a) and 0 <= a <= 1 for a in v),
    "a list of epoch records": lambda v: isinstance(v, list) and all(_record(r) for r in v),
    "a mapping": lambda v: isinstance(v, dict),
    "a mapping or None": lambda v: v is None or isinstance(v, dict),
}
# what train_victim reads of a state (STATE_KEYS), of its best fold so far, and what fit() reads of its "fit"
_STATE_KINDS = {"val_accs": "a list of accuracies", "best": "a mapping or None", "epochs_total": "a count",
                "seconds": "a finite number >= 0", "images": "a finite number >= 0",
                "records": "a list of epoch records", "fold_index": "a count", "fit": "a mapping"}
_BEST_KINDS = {"val_acc": "an accuracy", "fold": "a count", "state": "a mapping"}
_FIT_KINDS = {"model": "a mapping", "optimizer": "a mapping", "scheduler": "a mapping", "scaler": "a mapping",
              "rng": "a mapping", "epoch": "a count", "best_acc": "an accuracy or None", "bad_epochs": "a count",
              "best_state": "a mapping or None", "history": "a list of epoch records",
              "train_seconds": "a finite number >= 0", "images": "a count"}


def _kinds_problem(values: Mapping[str, Any], kinds: Mapping[str, str], *, where: str) -> str | None:
    """The first entry of ``kinds`` missing from ``values`` or not of its kind (None: none)."""
    missing = [k for k in kinds if k not in values]
    if missing:
        return f"{where} lacks {missing}"
    for key, kind in kinds.items():
        if not _KINDS[kind](values[key]):
            value = values[key]
            shown = one_line(repr(value), limit=40) if isinstance(value, (str, int, float)) else type(value).__name__
            return f"{where}[{key!r}] is {shown}, not {kind}"
    return None


def _progress_problem(state: Mapping[str, Any], *, n_folds: int, n_epochs: int) -> str | None:
    """Whether the saved folds and epochs are a point this training passes (a state is saved after every epoch
    of the fold ``fold_index``, before that fold joins ``val_accs``)."""
    fit_state, done = state["fit"], len(state["val_accs"])
    if state["fold_index"] != done or done >= n_folds or (state["best"] is None) != (done == 0):
        return (f"it is at fold index {state['fold_index']} with {done} of {n_folds} folds finished and "
                f"{'no' if state['best'] is None else 'a'} best fold")
    if not 1 <= fit_state["epoch"] <= n_epochs or len(fit_state["history"]) != fit_state["epoch"]:
        return (f"it is at epoch {fit_state['epoch']} of {n_epochs} with {len(fit_state['history'])} epochs of "
                f"history")
    return None


# what loading a mangled state into torch's objects raises (a size mismatch, a missing key, a string for a number)
_LOAD_ERRORS = (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError)


def _fit_load_problem(state: Mapping[str, Any], *, params: Params, meta: Mapping[str, Any]) -> str | None:
    """Load the saved weights, optimizer, scheduler, grad scaler and RNG states into a model and the objects
    ``fit`` makes for it (on the CPU, the saved state itself untouched) and step the optimizer (zero gradients)
    and the scheduler once: the first failure, named, or None. Costs a copy of the model and optimizer state."""
    cfg, fit_state = params.model_train, state["fit"]
    model = build_model(params.model, n_classes=int(meta["n_classes"]), input_shape=meta["input_shape"])
    optimizer = make_optimizer(model, name=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, name=cfg.schedule, epochs=cfg.epochs)
    _, scaler = autocast_for(torch.device(resolve_device(params.device)), enabled=cfg.amp)
    weights = {"state['best']['state']": (state["best"] or {}).get("state"),
               "state['fit']['best_state']": fit_state["best_state"], "state['fit']['model']": fit_state["model"]}
    steps = [(name, lambda tensors=tensors: model.load_state_dict(tensors))
             for name, tensors in weights.items() if tensors is not None]
    steps += [
        ("state['fit']['optimizer']", lambda: _step_optimizer(optimizer, fit_state["optimizer"])),
        ("state['fit']['scheduler']", lambda: _step_scheduler(scheduler, fit_state["scheduler"])),
        ("state['fit']['scaler']", lambda: _load_scaler(scaler, fit_state["scaler"])),
        ("state['fit']['rng']", lambda: _try_rng_state(fit_state["rng"])),
    ]
    for name, step in steps:
        try:
            step()
        except _LOAD_ERRORS as exc:
            return f"{name} does not fit this training ({one_line(f'{type(exc).__name__}: {exc}', limit=200)})"
    return None


def _step_optimizer(optimizer: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    # load_state_dict keeps the saved tensors themselves where dtype and device match: step a copy
    optimizer.load_state_dict(copy.deepcopy(dict(saved)))
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    optimizer.step()


def _step_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler, saved: Mapping[str, Any]) -> None:
    scheduler.load_state_dict(copy.deepcopy(dict(saved)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's warnings about the order of steps, irrelevant here
        scheduler.step()


def _load_scaler(scaler: torch.amp.GradScaler, saved: Mapping[str, Any]) -> None:
    scaler.load_state_dict(dict(saved))  # a no-op when the scaler is disabled (CPU, bf16)
    wrong = {k: v for k, v in scaler.state_dict().items() if not _number(v)}
    if wrong:
        raise TypeError(f"entries {sorted(wrong)} are not finite numbers")


def _try_rng_state(saved: Mapping[str, Any]) -> None:
    previous = rng_state()
    try:
        set_rng_state(saved)
    finally:
        set_rng_state(previous)
