"""Transfer of stored adversarials from the model they were crafted on (the source) to another (the target).

Pure counting on predictions (docs/PROTOCOL.md "Transfer"): which of a source's victims a target model can be
asked about (it classifies the clean victim correctly), and which of the source's successful adversarials also
fool the target, with the same success rule as the attack stages: the target class for targeted attacks, any
wrong class for untargeted ones. :mod:`advaudio.report.transfer` runs the models and writes the matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from advaudio.evaluation.precision import exact_float32
from advaudio.evaluation.stats import wilson_interval
from advaudio.models.predict import predict


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


def transfer_counts(
    *,
    labels: np.ndarray,
    targets: np.ndarray,
    targeted: bool,
    source_success: np.ndarray,
    clean_predictions: np.ndarray,
    adv_predictions: np.ndarray,
) -> TransferCounts:
    """Count one (source, target, attack) entry of a transfer matrix.

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
        raise ValueError(f"transfer_counts needs one value per victim in every array; got shapes {shapes}")
    asked = np.asarray(clean_predictions) == np.asarray(labels)  # the target gets the clean victim right
    succeeded = asked & np.asarray(source_success, dtype=bool)
    hit = succeeded & fools(predictions=np.asarray(adv_predictions), labels=np.asarray(labels),
                            targets=np.asarray(targets), targeted=targeted)
    return TransferCounts(n=int(asked.sum()), n_source_success=int(succeeded.sum()), fooled=int(hit.sum()))


def predict_classes(model: torch.nn.Module, x: np.ndarray, *, batch_size: int, device: torch.device) -> np.ndarray:
    """Top-1 classes of ``model`` on the inputs ``x`` ``(N, 1, H, W)``, in exact float32 (no autocast, no TF32),
    the arithmetic in which the attack stages decide success."""
    with exact_float32():
        logits = predict(model, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), batch_size=batch_size,
                         device=device)
    return logits.argmax(dim=1).numpy()
