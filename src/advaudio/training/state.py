"""The training's resume state (``build/.resume/train/state.pt``): an interrupted training continues at its last
finished epoch instead of starting over (:mod:`advaudio.resume` keeps the folder and discards it when any
input of the ``train`` stage changed).

A state holds what :func:`~advaudio.training.run.train_victim` needs to go on (:data:`STATE_KEYS`: the folds
finished so far, the best one, counters and epoch records) and, under ``"fit"``, what
:func:`~advaudio.training.loop.fit` saved after the last epoch (weights, optimizer, scheduler, grad scaler, RNG
states, history). A file that does not load (truncated, corrupt, not a torch file, holding Python objects other
than tensors and plain types), lacks what a state holds, holds a tensor with NaN or inf, or cannot continue
this training (:func:`resume_state_problem`) is refused by :func:`read_training_state`; the folder deletes it
with a one-line message on stderr, and the training starts over: a bad file never blocks it.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import IO, Any, Callable, Mapping

import torch

from advaudio.config import Params, resolve_device
from advaudio.errors import DataError
from advaudio.loading import first_nonfinite, load_torch, one_line
from advaudio.models import build_model
from advaudio.training.loop import autocast_for, make_optimizer, make_scheduler, rng_state, set_rng_state

STATE_FILE = "state.pt"
KIND = "an advaudio training resume state"
# what every state holds (train_victim saves it after each epoch, with fit's state under "fit")
STATE_KEYS = ("val_accs", "best", "epochs_total", "seconds", "images", "records", "fold_index", "fit")


def write_training_state(fh: IO[bytes], state: Mapping[str, Any]) -> None:
    """Write ``state`` (holding :data:`STATE_KEYS`) to the open file ``fh``."""
    torch.save(dict(state), fh)


def read_training_state(path: Path, *, params: Params, meta: Mapping[str, Any], n_folds: int) -> dict[str, Any]:
    """The state saved at ``path``, checked to continue this training.

    Parameters
    ----------
    path : Path
        The file.
    params : Params
        This training's params.
    meta : mapping
        The features' ``meta.json`` (``n_classes``, ``input_shape``).
    n_folds : int
        Validation folds of this training.

    Raises
    ------
    DataError
        Naming the file and what is wrong with it.
    """
    state = load_torch(path, kind=KIND)
    if not isinstance(state, dict):
        problem = f"it holds {type(state).__name__}, not a mapping"
    else:
        missing = [k for k in STATE_KEYS if k not in state]
        bad = None if missing else first_nonfinite(state, where="state")
        problem = (f"its state lacks {missing}" if missing else f"{bad} holds NaN or inf" if bad is not None
                   else resume_state_problem(state, params=params, meta=meta, n_folds=n_folds))
    if problem:
        raise DataError(f"{str(path)!r} is not {KIND}: {problem}")
    return state


def resume_state_problem(state: Mapping[str, Any], *, params: Params, meta: Mapping[str, Any],
                         n_folds: int) -> str | None:
    """What keeps a saved resume state (holding :data:`STATE_KEYS`) from continuing this training; None if
    nothing. A tampered or mangled file saved under the same inputs must not crash the training half-way or
    resume it from nonsense.

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
