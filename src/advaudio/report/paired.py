"""Per-victim numbers behind Tables I-III: 95 % intervals and paired clean-vs-retrained tests.

Reads what the attack stages store per victim (``build/attacks/<mode>/results.npz``) and computes, on the
same victims for both models (docs/PROTOCOL.md "Uncertainty" and "The study's tables"):

* Table I: Wilson intervals of the test accuracies; exact McNemar test on per-test-clip correctness of the
  original and the retrained model (``accuracy_drop_p``).
* Table II: per attack, the bounded fooling rates (success within :func:`~advaudio.evaluation.ball.within_bound`)
  with Wilson intervals and an exact McNemar test on per-victim success; the mean over attacks with a
  bootstrap interval over victims and a Wilcoxon signed-rank test on the per-victim share of attacks that
  fool the victim (``bounded_fooling_rate_p``).
* Table III: eps_r paired. Per attack, eps_o and eps_a are means over the victims that both models classify
  correctly and both attacks fool (``n_pairs``), so both means are over the same victims; the mean of the
  per-attack ratios gets a bootstrap interval over victims and a bootstrap p-value against eps_r = 1; each
  attack gets a Wilcoxon signed-rank p-value on its paired perturbation sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advaudio.errors import DataError
from advaudio.loading import read_npz
from advaudio.evaluation.ball import within_bound
from advaudio.evaluation.stats import (
    bootstrap_interval,
    bootstrap_p_value,
    mcnemar_p,
    wilcoxon_p,
    wilson_interval,
)


@dataclass(frozen=True)
class VictimResults:
    """One attack stage's per-victim results: ``l2`` and ``success`` per attack, whether the attacked model
    classifies each victim correctly, and its predictions on the whole test split."""

    path: Path
    l2: dict[str, np.ndarray]
    success: dict[str, np.ndarray]
    model_correct: np.ndarray
    test_predictions: np.ndarray
    test_labels: np.ndarray

    @property
    def n_victims(self) -> int:
        return len(self.model_correct)


def read_victim_results(*, path: str | Path, attacks: list[str]) -> VictimResults:
    """Load ``results.npz`` of one attack stage (without the adversarials).

    Raises
    ------
    DataError
        If the file is missing or an array is absent or has the wrong length (the message names the file).
    """
    path = Path(path)
    need = ["model_correct", "test_predictions", "test_labels"]
    need += [f"{a}_{k}" for a in attacks for k in ("l2", "success")]
    if not path.exists():
        raise DataError(f"{path}: per-victim attack results not found; run the attack stages first")
    arrays = read_npz(path, keys=need, kind="an advaudio attack results file",
                      hint="rerun the attack stage that writes it")
    n = len(arrays["model_correct"])
    if any(len(arrays[f"{a}_{k}"]) != n for a in attacks for k in ("l2", "success")):
        raise DataError(f"{path}: per-attack arrays differ in length from model_correct ({n} victims)")
    if len(arrays["test_predictions"]) != len(arrays["test_labels"]):
        raise DataError(f"{path}: test_predictions and test_labels differ in length")
    return VictimResults(
        path=path,
        l2={a: arrays[f"{a}_l2"].astype(np.float64) for a in attacks},
        success={a: arrays[f"{a}_success"].astype(bool) for a in attacks},
        model_correct=arrays["model_correct"].astype(bool),
        test_predictions=arrays["test_predictions"].astype(np.int64),
        test_labels=arrays["test_labels"].astype(np.int64),
    )


def _interval(metrics: dict[str, float], key: str, low: float, high: float) -> None:
    metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"] = float(low), float(high)


def accuracy_uncertainty(
    *, original: VictimResults, retrained: VictimResults, accuracy: dict[str, float]
) -> dict[str, float]:
    """Wilson intervals of ``accuracy``, ``accuracy_retrained`` (and ``accuracy_control`` when present) and the
    McNemar p-value of the original-vs-retrained difference on the same test clips.

    Raises
    ------
    DataError
        If the two stages saw different test labels, or an accuracy from the training metrics disagrees with
        the predictions the attack stages stored (stale inputs).
    """
    if not np.array_equal(original.test_labels, retrained.test_labels):
        raise DataError(f"{original.path} and {retrained.path} hold different test labels; rerun the attack stages")
    labels = original.test_labels
    n = len(labels)
    correct_o = original.test_predictions == labels
    correct_r = retrained.test_predictions == labels
    out: dict[str, float] = {"n_test": float(n)}
    for key, correct, source in (("accuracy", correct_o, original.path),
                                 ("accuracy_retrained", correct_r, retrained.path)):
        if abs(correct.mean() - accuracy[key]) > 0.5 / max(n, 1):
            raise DataError(f"{source}: stored predictions give accuracy {correct.mean():.4f}, the training "
                            f"metrics {accuracy[key]:.4f}; rerun the attack stages")
        _interval(out, key, *wilson_interval(int(correct.sum()), n))
    if "accuracy_control" in accuracy:
        _interval(out, "accuracy_control", *wilson_interval(int(round(accuracy["accuracy_control"] * n)), n))
    out["accuracy_drop_p"] = mcnemar_p(correct_o, correct_r)
    return out


def bounded_uncertainty(
    *, original_bounded: VictimResults, bounded: VictimResults, bound: float, attacks: list[str], seed: int
) -> dict[str, float]:
    """Table II from the per-victim results, with intervals and paired tests (module docstring)."""
    if original_bounded.n_victims != bounded.n_victims:
        raise DataError(f"{original_bounded.path} and {bounded.path} hold different victim counts; rerun the attack stages")
    n = bounded.n_victims
    hit_o = {a: original_bounded.success[a] & within_bound(original_bounded.l2[a], bound) for a in attacks}
    hit_r = {a: bounded.success[a] & within_bound(bounded.l2[a], bound) for a in attacks}
    out: dict[str, float] = {}
    for a in attacks:
        for key, hit in ((f"bounded_fooling_rate_{a}", hit_r[a]), (f"bounded_fooling_rate_original_{a}", hit_o[a])):
            out[key] = float(hit.mean())
            _interval(out, key, *wilson_interval(int(hit.sum()), n))
        out[f"bounded_fooling_rate_{a}_p"] = mcnemar_p(hit_o[a], hit_r[a])
    share_o = np.mean([hit_o[a] for a in attacks], axis=0)  # per victim: share of attacks that fool it
    share_r = np.mean([hit_r[a] for a in attacks], axis=0)
    for key, share, hits in (("bounded_fooling_rate", share_r, hit_r), ("bounded_fooling_rate_original", share_o, hit_o)):
        boot = bootstrap_interval(lambda idx, s=share: float(s[idx].mean()), n, seed=seed)
        out[key] = float(np.mean([hits[a].mean() for a in attacks]))  # the mean of the per-attack rates
        _interval(out, key, boot.low, boot.high)
    out["bounded_fooling_rate_p"] = wilcoxon_p(share_o, share_r)
    return out


@dataclass(frozen=True)
class PairedEps:
    """Per-attack paired eps_o, eps_a, ratio, pair count and Wilcoxon p-value."""

    pairs: dict[str, np.ndarray]  # attack -> (N,) bool: victims in the pair set
    ratio: dict[str, float]
    n_pairs: dict[str, int]
    p_value: dict[str, float]


def paired_eps(*, clean: VictimResults, unbounded: VictimResults, attacks: list[str]) -> PairedEps:
    """eps_a / eps_o per attack over victims both models classify correctly and both attacks fool."""
    if clean.n_victims != unbounded.n_victims:
        raise DataError(f"{clean.path} and {unbounded.path} hold different victim counts; rerun the attack stages")
    both_correct = clean.model_correct & unbounded.model_correct
    pairs, ratio, n_pairs, p_value = {}, {}, {}, {}
    for a in attacks:
        pair = both_correct & clean.success[a] & unbounded.success[a]
        pairs[a], n_pairs[a] = pair, int(pair.sum())
        if pair.any() and clean.l2[a][pair].mean() > 0:
            ratio[a] = float(unbounded.l2[a][pair].mean() / clean.l2[a][pair].mean())
        p_value[a] = wilcoxon_p(clean.l2[a][pair], unbounded.l2[a][pair])
    return PairedEps(pairs=pairs, ratio=ratio, n_pairs=n_pairs, p_value=p_value)


def eps_ratio_interval(
    *, clean: VictimResults, unbounded: VictimResults, paired: PairedEps, attacks: list[str], seed: int
) -> tuple[float, float, float]:
    """Bootstrap over victims of the mean paired eps_r over ``attacks``: ``(low, high, p against 1)``."""

    def statistic(idx: np.ndarray) -> float:
        ratios = []
        for a in attacks:
            pair = paired.pairs[a][idx]
            if not pair.any():
                return float("nan")
            eps_o = clean.l2[a][idx][pair].mean()
            if eps_o <= 0:
                return float("nan")
            ratios.append(unbounded.l2[a][idx][pair].mean() / eps_o)
        return float(np.mean(ratios))

    boot = bootstrap_interval(statistic, clean.n_victims, seed=seed)
    return boot.low, boot.high, bootstrap_p_value(boot.distribution, 1.0)
