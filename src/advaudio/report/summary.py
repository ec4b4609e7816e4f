"""The configuration's summary numbers (Tables I-III) computed from the stages' metrics and per-victim results.

Definitions (docs/PROTOCOL.md, "The study's tables" and "Uncertainty"). Every rate and accuracy carries a 95 %
interval (``<key>_ci_low``, ``<key>_ci_high``) and every clean-vs-retrained comparison a paired p-value
(``<key>_p``), computed in :mod:`advaudio.report.paired`:

* ``accuracy``: clean test accuracy of the original model (``metrics/train.json`` ``test_accuracy``).
* ``accuracy_drop``: original minus FGSM-retrained test accuracy in percentage points (Table I's
  parentheses); ``accuracy_drop_relative``: the same drop as a fraction of the original accuracy.
  ``accuracy_control``: test accuracy after ``clean_finetune`` (fgsm_retrain's epochs, rate and rows with the
  clean loss only); ``accuracy_drop_vs_control``: control minus retrained, in points, the part of the change
  that adversarial training, not extra training, causes.
* ``bounded_fooling_rate`` (Table II): mean over the attacks of the retrained model's fooling rate with
  ||delta||_2 <= ``attack.bound`` (recomputed from ``build/attacks/retrained_bounded/results.npz`` with the one
  tolerance of :func:`advaudio.evaluation.ball.within_bound`, and checked against ``fr_at_bound`` of
  ``attack@retrained_bounded``); ``bounded_fooling_rate_original``: the same for the original model (``original_bounded``). Both come from the same
  bounded attack (BIM's epsilon capped at the bound, every adversarial projected onto the ball) on the same
  victims, so the pair is comparable; the original model's unbounded search is not used here because its
  adversarials were not optimised within the bound.
  ``bound_l2``: that bound as the attack stages applied it (``attack.bound`` at this input size,
  :mod:`advaudio.evaluation.bound`).
* ``eps_ratio`` (Table III, Eq. 15): per attack, eps_r = eps_a / eps_o, with eps the mean ||delta||_2 over
  the **paired** victims: those both models classify correctly and both attacks fool
  (``eps_ratio_<attack>_n_pairs``; ``eps_ratio_n_pairs`` sums them over the attacks in the mean), at the
  budget that reached FR >= ``attack.target_fooling_rate``; eps_a from ``attack@retrained`` (retrained),
  eps_o from ``attack@original`` (original). ``eps_ratio_unpaired`` is the study's figure: the same mean of
  ratios of ``mean_l2`` over each model's own successes (different victims, and victims the retrained
  model already misclassifies counted at ||delta||_2 = 0 for DeepFool). ``eps_ratio`` is the
  **mean of the per-attack ratios**, so every attack weighs the same whatever its typical perturbation size
  (a ratio of means would be dominated by the attack with the largest perturbations).
  An attack whose search did not reach the target on either model is left out of the mean, because its
  eps would be measured at a different budget than the study's. When no attack reached the target on both
  models, the mean falls back to all attacks with successes on both models and ``eps_ratio_strict`` is 0;
  otherwise it is 1. ``eps_ratio_n_attacks`` counts the attacks in the mean. When no attack has successes
  on both models, ``eps_ratio`` is omitted (metrics hold no NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advaudio.errors import DataError
from advaudio.report.inputs import AttackMetrics, require_number
from advaudio.report.paired import (
    PairedEps,
    VictimResults,
    accuracy_uncertainty,
    bounded_uncertainty,
    eps_ratio_interval,
    paired_eps,
)

# Fooling rates are k / n; compare with the target with this slack so 0.9 reached as 18/20 counts.
_FR_TOLERANCE = 1e-9


@dataclass(frozen=True)
class EpsRatio:
    """Eq. 15 per attack and its mean, with the attacks left out and why."""

    per_attack: dict[str, float]
    all_ratios: dict[str, float]
    excluded: dict[str, str]
    mean: float | None
    strict: bool
    unpaired: dict[str, float] = field(default_factory=dict)  # the study's ratio of mean_l2, per attack


@dataclass(frozen=True)
class Summary:
    """Everything the report needs besides the raw metrics: the numbers and how they were obtained."""

    metrics: dict[str, float]
    eps: EpsRatio
    attacks: list[str]
    retrain_clean_accuracy: float | None = None


def read_test_accuracy(obj: dict[str, Any], *, path: str | Path) -> float:
    """``test_accuracy`` of a stage's metrics, checked to be a fraction.

    Raises
    ------
    DataError
        If it is missing, not a number or outside [0, 1] (the message names ``path``).
    """
    value = require_number(obj, "test_accuracy", path=path)
    if not 0.0 <= value <= 1.0:
        raise DataError(f"{path}: test_accuracy = {value} is not a fraction in [0, 1]")
    return value


def accuracy_metrics(
    *, train: dict[str, Any], retrain: dict[str, Any], train_path: str | Path, retrain_path: str | Path
) -> dict[str, float]:
    """Table I numbers from ``metrics/train.json`` and ``metrics/fgsm_retrain.json``.

    Returns
    -------
    dict
        ``accuracy``, ``accuracy_retrained`` (fractions), ``accuracy_drop`` (percentage points) and
        ``accuracy_drop_relative`` (fraction of ``accuracy``; omitted when ``accuracy`` is 0).

    Raises
    ------
    DataError
        If ``test_accuracy`` is missing from either file or is outside [0, 1].
    """
    original = read_test_accuracy(train, path=train_path)
    retrained = read_test_accuracy(retrain, path=retrain_path)
    out = {
        "accuracy": original,
        "accuracy_retrained": retrained,
        "accuracy_drop": 100.0 * (original - retrained),
    }
    if original > 0:
        out["accuracy_drop_relative"] = (original - retrained) / original
    return out


def bounded_metrics(
    *, original_bounded: AttackMetrics, bounded: AttackMetrics, results: dict[str, VictimResults], bound: float,
    seed: int,
) -> dict[str, float]:
    """Table II numbers from the per-victim results, checked against the stages' ``fr_at_bound``.

    Raises
    ------
    DataError
        If a rate recomputed from ``results.npz`` differs from the stage's metrics (stale files).
    """
    attacks = sorted(bounded.attacks)
    out = bounded_uncertainty(original_bounded=results["original_bounded"], bounded=results["retrained_bounded"], bound=bound,
                              attacks=attacks, seed=seed)
    for a in attacks:
        for key, metrics in ((f"bounded_fooling_rate_{a}", bounded), (f"bounded_fooling_rate_original_{a}", original_bounded)):
            reported = float(metrics.attacks[a]["fr_at_bound"])
            if abs(out[key] - reported) > 1e-9:
                raise DataError(f"{metrics.path}: {a} fr_at_bound {reported} but the stored results give "
                                f"{out[key]}; rerun the attack stages")
    aucs = [bounded.attacks[a].get("auc") for a in attacks]
    if all(isinstance(v, (int, float)) for v in aucs):
        out["bounded_auc"] = sum(aucs) / len(aucs)
    return out


def eps_ratio(
    *, clean: AttackMetrics, unbounded: AttackMetrics, paired: PairedEps, target_fooling_rate: float
) -> EpsRatio:
    """Eq. 15 per attack (paired) and averaged; see the module docstring for the rules.

    Parameters
    ----------
    clean, unbounded : AttackMetrics
        The budget searches against the original and the retrained model.
    paired : PairedEps
        The per-attack paired ratios (:func:`advaudio.report.paired.paired_eps`).
    target_fooling_rate : float
        ``attack.target_fooling_rate`` (the study's 0.9).
    """
    strict: dict[str, float] = {}
    usable: dict[str, float] = {}
    unpaired: dict[str, float] = {}
    excluded: dict[str, str] = {}
    for a in sorted(clean.attacks):
        o, r = clean.attacks[a], unbounded.attacks[a]
        eps_o, eps_a = o.get("mean_l2"), r.get("mean_l2")
        if eps_o is not None and eps_a is not None and eps_o > 0:
            unpaired[a] = float(eps_a) / float(eps_o)
        if a not in paired.ratio:
            excluded[a] = "no victim that both models classify correctly and both attacks fool"
            continue
        usable[a] = paired.ratio[a]
        short = [
            f"{side} FR {entry['fooling_rate']:.2f} < {target_fooling_rate:.2f}"
            for side, entry in (("original", o), ("retrained", r))
            if entry["fooling_rate"] < target_fooling_rate - _FR_TOLERANCE
        ]
        if short:
            excluded[a] = "target not reached: " + "; ".join(short)
        else:
            strict[a] = usable[a]
    chosen = strict if strict else usable
    mean = sum(chosen.values()) / len(chosen) if chosen else None
    return EpsRatio(per_attack=chosen, all_ratios=usable, excluded=excluded, mean=mean, strict=bool(strict),
                    unpaired=unpaired)


def summarize(
    *,
    train: dict[str, Any],
    retrain: dict[str, Any],
    suite: dict[str, AttackMetrics],
    results: dict[str, VictimResults],
    target_fooling_rate: float,
    seed: int = 0,
    train_path: str | Path = "metrics/train.json",
    retrain_path: str | Path = "metrics/fgsm_retrain.json",
    control: dict[str, Any] | None = None,
    control_path: str | Path = "metrics/clean_finetune.json",
) -> Summary:
    """Compute ``metrics/summary.json`` (numbers only) and the details the report states.

    ``results`` maps each attack mode to its per-victim results (``build/attacks/<mode>/results.npz``);
    ``control`` is ``metrics/clean_finetune.json`` (without it the control keys are left out); ``seed``
    seeds the bootstraps.

    Raises
    ------
    DataError
        Naming the file and key when an input lacks a required number or the inputs disagree.
    """
    metrics = accuracy_metrics(train=train, retrain=retrain, train_path=train_path, retrain_path=retrain_path)
    if control is not None:
        controlled = read_test_accuracy(control, path=control_path)
        metrics["accuracy_control"] = controlled
        metrics["accuracy_drop_vs_control"] = 100.0 * (controlled - metrics["accuracy_retrained"])
    metrics.update(accuracy_uncertainty(original=results["original"], retrained=results["retrained"], accuracy=metrics))
    bound = suite["retrained_bounded"].bound
    metrics.update(bounded_metrics(original_bounded=suite["original_bounded"], bounded=suite["retrained_bounded"], results=results,
                                   bound=bound, seed=seed))
    metrics["bound_l2"] = bound
    attacks = list(suite["original"].attacks)
    paired = paired_eps(clean=results["original"], unbounded=results["retrained"], attacks=sorted(attacks))
    eps = eps_ratio(clean=suite["original"], unbounded=suite["retrained"], paired=paired,
                    target_fooling_rate=target_fooling_rate)
    if eps.mean is not None:
        metrics["eps_ratio"] = eps.mean
        metrics["eps_ratio_strict"] = 1.0 if eps.strict else 0.0
        low, high, p = eps_ratio_interval(clean=results["original"], unbounded=results["retrained"], paired=paired,
                                          attacks=sorted(eps.per_attack), seed=seed)
        metrics["eps_ratio_ci_low"], metrics["eps_ratio_ci_high"], metrics["eps_ratio_p"] = low, high, p
        unpaired = [eps.unpaired[a] for a in eps.per_attack if a in eps.unpaired]
        if len(unpaired) == len(eps.per_attack):
            metrics["eps_ratio_unpaired"] = sum(unpaired) / len(unpaired)
    metrics["eps_ratio_n_attacks"] = float(len(eps.per_attack))
    metrics["eps_ratio_n_pairs"] = float(sum(paired.n_pairs[a] for a in eps.per_attack))
    for a, ratio in eps.per_attack.items():
        metrics[f"eps_ratio_{a}"] = ratio
        metrics[f"eps_ratio_{a}_n_pairs"] = float(paired.n_pairs[a])
        metrics[f"eps_ratio_{a}_p"] = paired.p_value[a]
    clean_acc = retrain.get("clean_test_accuracy")
    return Summary(
        metrics=metrics,
        eps=eps,
        attacks=attacks,
        retrain_clean_accuracy=float(clean_acc) if isinstance(clean_acc, (int, float)) else None,
    )
