"""Transfer of stored adversarials from the model they were crafted on (the source) to another (the target).

Counting on predictions (docs/PROTOCOL.md "Transfer"): which of a source's victims a target model can be
asked about (it classifies the clean victim correctly), and which of the source's successful adversarials also
fool the target, with the same success rule as the attack stages: the target class for targeted attacks, any
wrong class for untargeted ones; and the matrices of a group of models sharing their features, from local copies of
their attack stages' outputs. :mod:`advaudio.report.transfer` writes a grid's matrices,
:mod:`advaudio.evaluation.masking` the original and the retrained model's of one cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from advaudio.attacks import ATTACKS
from advaudio.errors import DataError
from advaudio.evaluation.memory import batch_size_for, free_bytes, per_sample_bytes
from advaudio.evaluation.precision import exact_float32
from advaudio.evaluation.stats import wilson_interval
from advaudio.evaluation.victims import load_victims
from advaudio.features.store import read_meta
from advaudio.loading import read_npz
from advaudio.models.predict import predict

META_NAME = "meta.json"  # a features folder's description (features/store.py)


@dataclass(frozen=True)
class TransferCounts:
    """What one source's adversarials of one attack do to one target model.

    Attributes
    ----------
    n : int
        The source's victims the target classifies correctly when clean.
    n_source_success : int
        Of those, the victims whose adversarial succeeded on the source model.
    fooled : int
        Of those, the victims whose adversarial also fools the target.
    """

    n: int
    n_source_success: int
    fooled: int

    def fooling_rate(self) -> "Rate":
        """``fooled / n``: how often the source's attack fools the target, among the victims the target gets
        right (on the diagonal, source = target: the white-box fooling rate)."""
        return Rate.of(successes=self.fooled, n=self.n)

    def transfer_rate(self) -> "Rate":
        """``fooled / n_source_success``: how often a successful adversarial of the source fools the target."""
        return Rate.of(successes=self.fooled, n=self.n_source_success)


@dataclass(frozen=True)
class Rate:
    """``successes / n`` with its Wilson 95 % interval; ``rate`` is None when ``n`` is 0 (interval [0, 1])."""

    successes: int
    n: int
    rate: float | None
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, *, successes: int, n: int) -> "Rate":
        """The rate and interval of ``successes`` out of ``n`` (:func:`~advaudio.evaluation.stats.wilson_interval`)."""
        low, high = wilson_interval(successes, n)
        return cls(successes=successes, n=n, rate=successes / n if n else None, ci_low=low, ci_high=high)

    def to_json(self) -> dict:
        """A plain mapping: ``n``, ``successes``, ``rate``, ``ci_low``, ``ci_high``."""
        return {"n": self.n, "successes": self.successes, "rate": self.rate, "ci_low": self.ci_low,
                "ci_high": self.ci_high}


def fools(*, predictions: np.ndarray, labels: np.ndarray, targets: np.ndarray, targeted: bool) -> np.ndarray:
    """Per victim, whether ``predictions`` count as fooled: the target class (``targeted``) or any class but the
    label (untargeted), as in the attack stages (docs/PROTOCOL.md "Success")."""
    return predictions == targets if targeted else predictions != labels


def transfer_hits(
    *,
    labels: np.ndarray,
    targets: np.ndarray,
    targeted: bool,
    source_success: np.ndarray,
    clean_predictions: np.ndarray,
    adv_predictions: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per victim, one (source, target, attack) entry of a transfer matrix: ``(asked, succeeded, hit)``.

    ``asked``: the target classifies the clean victim correctly; ``succeeded``: asked and the adversarial
    succeeded on the source; ``hit``: succeeded and it also fools the target. All ``(V,)`` bool.

    Parameters
    ----------
    labels, targets : np.ndarray
        The source's victims' labels and targets, ``(V,)``.
    targeted : bool
        The attack is targeted (success: the target's prediction is the victim's target).
    source_success : np.ndarray
        ``(V,)`` bool: the attack stage's success of each adversarial on the source model (finite, in range,
        within the bound in a bounded stage, and fooling the source).
    clean_predictions : np.ndarray
        ``(V,)``: the target model's classes on the clean victims.
    adv_predictions : np.ndarray
        ``(V,)``: the target model's classes on the source's adversarials.

    Raises
    ------
    ValueError
        If the arrays do not all have the shape ``(V,)``.
    """
    arrays = {"labels": labels, "targets": targets, "source_success": source_success,
              "clean_predictions": clean_predictions, "adv_predictions": adv_predictions}
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if len(set(shapes.values())) != 1 or len(shapes["labels"]) != 1:
        raise ValueError(f"transfer_hits needs one value per victim in every array; got shapes {shapes}")
    asked = np.asarray(clean_predictions) == np.asarray(labels)  # the target gets the clean victim right
    succeeded = asked & np.asarray(source_success, dtype=bool)
    hit = succeeded & fools(predictions=np.asarray(adv_predictions), labels=np.asarray(labels),
                            targets=np.asarray(targets), targeted=targeted)
    return asked, succeeded, hit


def transfer_counts(**arrays: Any) -> TransferCounts:
    """Count one (source, target, attack) entry of a transfer matrix: the sums of :func:`transfer_hits` (same
    keyword arguments, same errors)."""
    asked, succeeded, hit = transfer_hits(**arrays)
    return TransferCounts(n=int(asked.sum()), n_source_success=int(succeeded.sum()), fooled=int(hit.sum()))


def predict_classes(model: torch.nn.Module, x: np.ndarray, *, batch_size: int, device: torch.device) -> np.ndarray:
    """Top-1 classes of ``model`` on the inputs ``x`` ``(N, 1, H, W)``, in exact float32 (no autocast, no TF32),
    the arithmetic in which the attack stages decide success."""
    with exact_float32():
        logits = predict(model, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), batch_size=batch_size,
                         device=device)
    return logits.argmax(dim=1).numpy()


Matrix = dict[str, dict[str, TransferCounts]]  # source model -> target model -> counts


@dataclass(frozen=True)
class ModelRun:
    """One model's side of a group in one attack mode: what it was attacked on and its clean predictions.

    ``test_predictions`` are the model's classes on the whole test split, computed by its attack stage (exact
    float32, the stage's input path); ``results`` is the stage's ``results.npz``, read one attack at a time.
    """

    model: str
    experiment: str
    rev: str
    meta: dict[str, Any]
    rows: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    test_labels: np.ndarray
    test_predictions: np.ndarray
    attacks: tuple[str, ...]
    results: Path

    def adversarials(self, attack: str) -> tuple[np.ndarray, np.ndarray]:
        """``(adv, success)`` of ``attack``: ``(V, C, H, W)`` float32 and ``(V,)`` bool, one row per victim.

        Raises
        ------
        DataError
            Naming the file, when they are missing or not one row per victim in the model's input shape.
        """
        hint = f"rerun the attack stage of {self.experiment!r}"
        z = read_npz(self.results, keys=[f"{attack}_adv", f"{attack}_success"],
                     kind="an advaudio attack results file", hint=hint)
        adv, success = z[f"{attack}_adv"], z[f"{attack}_success"]
        shape = (len(self.rows), *self.meta["input_shape"])
        if adv.shape != shape or success.shape != (len(self.rows),):
            raise DataError(f"{self.results}: {attack}_adv {adv.shape} and {attack}_success {success.shape}; expected "
                            f"{shape} and ({len(self.rows)},), one per victim of {self.experiment!r} ({hint})")
        return adv, success.astype(bool)


def read_run(*, model: str, experiment: str, rev: str, features: Path, victims: Path, results: Path) -> ModelRun:
    """A :class:`ModelRun` from local copies of a features folder's ``meta.json`` (in ``features``), the
    victims file and the attack stage's results.

    Raises
    ------
    DataError
        Naming the file, when one is missing, unreadable, or the victims and results disagree with the test split.
    """
    meta = read_meta(features)
    hint = f"rerun the attack stage of {experiment!r}"
    z = read_npz(results, keys=["test_predictions", "test_labels"], kind="an advaudio attack results file", hint=hint)
    test_labels, test_predictions = z["test_labels"].astype(np.int64), z["test_predictions"].astype(np.int64)
    split = (meta["storage"].get("splits") or {}).get("test")
    if not isinstance(split, dict) or "n" not in split:
        raise DataError(f"{features / META_NAME}: 'storage' describes no test split; expected its clip count n")
    n_test = int(split["n"])
    if test_labels.shape != (n_test,) or test_predictions.shape != (n_test,):
        raise DataError(f"{results}: test_labels {test_labels.shape} and test_predictions {test_predictions.shape}; "
                        f"expected ({n_test},) each, the test split of {features / META_NAME} ({hint})")
    rows, targets = load_victims(victims, test_labels=test_labels)
    with np.load(results, allow_pickle=False) as npz:  # read_npz above has checked that it is an .npz archive
        attacks = tuple(k[: -len("_adv")] for k in npz.files if k.endswith("_adv"))
    return ModelRun(model=model, experiment=experiment, rev=rev, meta=meta, rows=rows, labels=test_labels[rows],
                    targets=targets, test_labels=test_labels, test_predictions=test_predictions, attacks=attacks,
                    results=results)


def check_group(runs: Mapping[str, ModelRun]) -> tuple[str, ...]:
    """The attacks every run of a group has, after checking that the runs share their features.

    Raises
    ------
    DataError
        Naming both experiments, when their features' ``meta.json`` or test labels differ, or they stored
        adversarials of different attacks.
    """
    first = next(iter(runs.values()))
    for run in runs.values():
        if json.dumps(run.meta, sort_keys=True) != json.dumps(first.meta, sort_keys=True) or not np.array_equal(
                run.test_labels, first.test_labels):
            raise DataError(f"experiments {first.experiment!r} and {run.experiment!r} were attacked on different "
                            f"features ({META_NAME} or test labels differ); expected one features stage per "
                            "(dataset, representation, seed)")
        if run.attacks != first.attacks:
            raise DataError(f"{run.results} holds adversarials of {list(run.attacks)}, {first.results} of "
                            f"{list(first.attacks)}; expected the same attacks in every experiment of a group")
    return first.attacks


Predictions = dict[str, dict[str, dict[str, np.ndarray]]]  # attack -> source -> target -> (V,) classes


def group_predictions(
    runs: Mapping[str, ModelRun], *, load_model: Callable[[str], torch.nn.Module], device: torch.device,
) -> Predictions:
    """Every target model's classes on every source's adversarials, per attack:
    ``{attack: {source: {target: (V_source,) classes}}}`` (exact float32, :func:`predict_classes`).

    Parameters
    ----------
    runs : mapping of str to ModelRun
        The group's models, in display order.
    load_model : callable
        Model name -> the model in eval mode on ``device`` (one is held at a time).
    device : torch.device
        Where the models run.

    Raises
    ------
    DataError
        From :func:`check_group` and :meth:`ModelRun.adversarials`.
    """
    attacks = check_group(runs)
    input_shape = next(iter(runs.values())).meta["input_shape"]
    out: Predictions = {a: {s: {} for s in runs} for a in attacks}
    for t in runs:
        model = load_model(t)
        batch = batch_size_for(per_sample=per_sample_bytes(model=model, input_shape=input_shape, device=device,
                                                           backward=False), free=free_bytes(device))
        for s, source in runs.items():
            for a in attacks:
                adv, _ = source.adversarials(a)
                out[a][s][t] = predict_classes(model, adv, batch_size=batch, device=device)
        del model
    return out


def entry_hits(runs: Mapping[str, ModelRun], predictions: Predictions, *, attack: str, source: str, target: str,
               targeted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`transfer_hits` of one matrix entry, from :func:`group_predictions`' output."""
    s, t = runs[source], runs[target]
    _, success = s.adversarials(attack)
    return transfer_hits(labels=s.labels, targets=s.targets, targeted=targeted, source_success=success,
                         clean_predictions=t.test_predictions[s.rows],  # the target on the source's clean victims
                         adv_predictions=predictions[attack][source][target])


def group_matrices(
    runs: Mapping[str, ModelRun],
    *,
    load_model: Callable[[str], torch.nn.Module],
    device: torch.device,
    targeted: Callable[[str], bool] = lambda name: ATTACKS.get(name).targeted,
) -> dict[str, Matrix]:
    """Every source's adversarials on every target, per attack: ``{attack: {source: {target: counts}}}``.

    ``runs``, ``load_model`` and ``device`` as for :func:`group_predictions`; ``targeted`` maps an attack name to
    whether it is targeted (default: the attack registry).

    Raises
    ------
    DataError
        From :func:`check_group` and :meth:`ModelRun.adversarials`.
    """
    return matrices_of(runs, group_predictions(runs, load_model=load_model, device=device), targeted=targeted)


def matrices_of(runs: Mapping[str, ModelRun], predictions: Predictions, *,
                targeted: Callable[[str], bool]) -> dict[str, Matrix]:
    """:func:`group_matrices` from :func:`group_predictions`' output (for callers that also need the hits)."""
    return {a: {s: {t: TransferCounts(*(int(v.sum()) for v in entry_hits(runs, predictions, attack=a, source=s,
                                                                          target=t, targeted=targeted(a))))
                    for t in runs} for s in runs} for a in predictions}
