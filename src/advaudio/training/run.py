"""The ``train`` stage's logic: pick (or rotate) the validation fold, train, keep the best-validation
model, evaluate it on the test split and assemble ``metrics/train.json``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from torch import nn

from advaudio.config import Params, resolve_device
from advaudio.models import build_model, count_parameters
from advaudio.models.checkpoint import make_config
from advaudio.features.store import FeatureReaders
from advaudio.training.data import pool_folds, train_val_rows
from advaudio.training.loop import EpochCallback, evaluate_logits, fit, seed_everything
from advaudio.training.resume import ResumeStore, code_digest, fingerprint


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

    Raises
    ------
    ConfigError
        Bad validation fold or model settings (e.g. pretrained weights not on disk).
    """
    device = resolve_device(params.device)
    cfg = params.model_train
    meta = features.meta
    store = None
    if resume_dir is not None:
        store = ResumeStore(resume_dir, fingerprint=training_fingerprint(features, params=params))
    saved = store.load(required=STATE_KEYS) if store is not None else None
    folds = validation_folds(features, params=params)
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
