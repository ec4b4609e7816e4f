"""The ``train`` stage's logic: pick (or rotate) the validation fold, train, keep the best-validation
model, evaluate it on the test split and assemble ``metrics/train.json``."""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from torch import nn

from advaudio.config import Params, resolve_device
from advaudio.models import build_model, count_parameters
from advaudio.models.checkpoint import make_config
from advaudio.features.store import FeatureReaders
from advaudio.training.data import train_val_rows, validation_folds
from advaudio.training.loop import (EpochCallback, evaluate_logits, fit, seed_everything)
from advaudio.resume import ResumeFolder
from advaudio.training.state import STATE_FILE, read_training_state, write_training_state


@dataclass
class TrainOutcome:
    """The kept model, its checkpoint config, ``metrics/train.json`` and test predictions."""

    model: nn.Module
    config: dict[str, Any]
    metrics: dict[str, float | int]
    test_labels: np.ndarray
    test_predictions: np.ndarray


def train_victim(
    *,
    params: Params,
    features: FeatureReaders,
    resume: ResumeFolder | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train ``params.model`` on ``features`` per ``params.model_train`` (``train`` with
    ``train.by_model[model]`` applied); resumable through ``resume``, where the state is saved after every
    epoch (:mod:`advaudio.training.state`).

    ``on_epoch`` gets the record of every epoch of the run once, in order: after a resume the epochs finished
    before the interruption are replayed first, with the values saved in the resume state. A logger started
    empty (DVCLive's ``Live(resume=False)``) therefore ends with the uninterrupted run's rows, whatever the
    moment of the interruption (even between the saving of an epoch's state and its logging).

    The training split is held in memory at the input size when small (:meth:`SplitReader.cached`), else
    streamed batch by batch; the test split is read in batches.

    A saved state that cannot continue this training (:func:`~advaudio.training.state.resume_state_problem`:
    entries missing or of the wrong kind, weights or optimizer moments that do not fit the model or hold NaN,
    ...) is discarded with a one-line message on stderr, and the training starts from its first epoch.

    Raises
    ------
    ConfigError
        Bad validation fold or model settings (e.g. pretrained weights not on disk).
    """
    device = resolve_device(params.device)
    cfg = params.model_train
    meta = features.meta
    folds = validation_folds(features, params=params)
    saved = resume.load(STATE_FILE, lambda path: read_training_state(
        path, params=params, meta=meta, n_folds=len(folds))) if resume is not None else None
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
                   "images": images, "records": records, "fold_index": i}
        result = fit(
            model, train=pool.subset(train_rows), val=pool.subset(val_rows), config=cfg, seed=params.seed + i,
            device=device, start=saved["fit"] if saved and saved["fold_index"] == i else None,
            on_state=None if resume is None else functools.partial(_save_state, resume, context),
            on_epoch=on_epoch, progress=progress,
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


def confusion_csv(outcome: TrainOutcome) -> str:
    """``actual,predicted`` class names of every test clip, the CSV ``dvc plots`` draws as a confusion matrix."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["actual", "predicted"])
    names = outcome.config["class_names"]
    writer.writerows((names[a], names[p]) for a, p in zip(outcome.test_labels, outcome.test_predictions))
    return buf.getvalue()


def _save_state(resume: ResumeFolder, context: dict[str, Any], fit_state: dict[str, Any]) -> None:
    resume.save(STATE_FILE, lambda fh: write_training_state(fh, {**context, "fit": fit_state}))
