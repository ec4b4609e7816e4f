"""Beyond the study: the FGSM-retrained model beside the PGD-retrained one (stage ``pgd_retrain``), on the same
victims (docs/PROTOCOL.md "Adversarial retraining: FGSM or PGD").

Both retrained models are attacked by the same unbounded budget search (``attack@retrained`` and
``attack@<pgd mode>``), so their robustness curves, their fooling rates within the L2 bound (each victim's
smallest adversarial found, ``fr_at_bound``) and their eps_r against the original model (Eq. 15, paired as in
Table III) compare like for like. Differences are tested over the same victims: exact McNemar per attack, a
Wilcoxon signed-rank test on the per-victim share of attacks for the mean (as Table II,
:func:`advaudio.report.paired.bounded_uncertainty`), McNemar on the test clips for the accuracies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advaudio.errors import DataError
from advaudio.evaluation.ball import within_bound
from advaudio.evaluation.stats import mcnemar_p, wilson_interval
from advaudio.report.inputs import AttackMetrics
from advaudio.report.paired import VictimResults, bounded_uncertainty, paired_eps
from advaudio.report.summary import eps_ratio, read_test_accuracy

PREFIX = "pgd_"  # summary.json keys of this comparison
_RENAMED = (  # bounded_uncertainty's keys (its "original" is the FGSM-retrained model here) -> ours
    ("bounded_fooling_rate_original", "fgsm_fr_at_bound"),
    ("bounded_fooling_rate", "pgd_fr_at_bound"),
)


@dataclass(frozen=True)
class PgdComparison:
    """The comparison's numbers (``metrics``, all in summary.json) and what the report states beside them."""

    metrics: dict[str, float]
    attacks: list[str]  # the study's attacks
    reference: list[str]  # the reference attacks (APGD), shown apart
    same_method: bool  # fgsm_retrain.method is pgd too: both models were retrained with PGD


def _rename(key: str) -> str:
    for old, new in _RENAMED:
        if key.startswith(old):
            return new + key[len(old):]
    raise AssertionError(key)


def compare_pgd(
    *,
    original: AttackMetrics,
    fgsm: AttackMetrics,
    pgd: AttackMetrics,
    results: dict[str, VictimResults],
    pgd_retrain: dict[str, Any],
    pgd_retrain_path: str | Path,
    accuracy_fgsm: float,
    target_fooling_rate: float,
    method: str,
    seed: int,
) -> PgdComparison:
    """The FGSM-retrained model (``fgsm``: ``attack@retrained``) against the PGD-retrained one (``pgd``).

    Parameters
    ----------
    original, fgsm, pgd : AttackMetrics
        The unbounded attack stages of the original, the FGSM-retrained and the PGD-retrained model.
    results : dict
        Per-victim results of the same stages, keys ``original``, ``retrained`` and ``pgd``.
    pgd_retrain : dict
        ``metrics/pgd_retrain.json`` (its ``test_accuracy``), read from ``pgd_retrain_path``.
    accuracy_fgsm : float
        The FGSM-retrained model's test accuracy (summary.json's ``accuracy_retrained``).
    target_fooling_rate : float
        ``attack.target_fooling_rate``, for eps_r's rules (:func:`advaudio.report.summary.eps_ratio`).
    method : str
        ``fgsm_retrain.method``: which method the study's retrained model used.
    seed : int
        Seeds the bootstrap intervals.

    Raises
    ------
    DataError
        When the stages attacked other attacks or victims, or a rate recomputed from ``results.npz`` differs
        from the stage's metrics (stale files); the message names the file.
    """
    if set(pgd.attacks) != set(fgsm.attacks) or set(pgd.reference) != set(fgsm.reference):
        raise DataError(f"{pgd.path}: attacks {sorted(pgd.attacks)} (reference {sorted(pgd.reference)}) differ from "
                        f"{fgsm.path}: {sorted(fgsm.attacks)} ({sorted(fgsm.reference)}); rerun the attack stages")
    r_fgsm, r_pgd = results["retrained"], results["pgd"]
    if not np.array_equal(r_fgsm.test_labels, r_pgd.test_labels):
        raise DataError(f"{r_fgsm.path} and {r_pgd.path} hold different test labels; rerun the attack stages")
    bound = pgd.bound
    attacks, reference = sorted(fgsm.attacks), sorted(fgsm.reference)
    out: dict[str, float] = {}

    accuracy = read_test_accuracy(pgd_retrain, path=pgd_retrain_path)
    correct_pgd = r_pgd.test_predictions == r_pgd.test_labels
    n = len(correct_pgd)
    if abs(correct_pgd.mean() - accuracy) > 0.5 / max(n, 1):
        raise DataError(f"{r_pgd.path}: stored predictions give accuracy {correct_pgd.mean():.4f}, "
                        f"{pgd_retrain_path} {accuracy:.4f}; rerun the attack stages")
    out[f"{PREFIX}accuracy_retrained"] = accuracy
    out[f"{PREFIX}accuracy_retrained_ci_low"], out[f"{PREFIX}accuracy_retrained_ci_high"] = wilson_interval(
        int(correct_pgd.sum()), n)
    clean = pgd_retrain.get("clean_test_accuracy")
    if isinstance(clean, (int, float)):
        out[f"{PREFIX}accuracy_drop"] = 100.0 * (float(clean) - accuracy)
    out[f"{PREFIX}accuracy_minus_fgsm"] = 100.0 * (accuracy - accuracy_fgsm)
    out[f"{PREFIX}accuracy_minus_fgsm_p"] = mcnemar_p(r_fgsm.test_predictions == r_fgsm.test_labels, correct_pgd)

    within = bounded_uncertainty(original_bounded=r_fgsm, bounded=r_pgd, bound=bound, attacks=attacks, seed=seed)
    for key, value in within.items():
        if key == "bounded_fooling_rate_p":
            out[f"{PREFIX}fr_at_bound_p"] = value
        elif key.endswith("_p"):  # bounded_fooling_rate_<attack>_p
            out[f"{PREFIX}fr_at_bound_{key[len('bounded_fooling_rate_'):-2]}_p"] = value
        else:
            out[_rename(key)] = value
    for label, metrics in (("fgsm", fgsm), ("pgd", pgd)):
        for a in attacks:
            reported = float(metrics.attacks[a]["fr_at_bound"])
            if abs(out[f"{label}_fr_at_bound_{a}"] - reported) > 1e-9:
                raise DataError(f"{metrics.path}: {a} fr_at_bound {reported} but the stored results give "
                                f"{out[f'{label}_fr_at_bound_{a}']}; rerun the attack stages")
    for label, r in (("fgsm", r_fgsm), ("pgd", r_pgd)):
        for a in reference:
            out[f"{label}_fr_at_bound_{a}"] = float((r.success[a] & within_bound(r.l2[a], bound)).mean())

    paired = paired_eps(clean=results["original"], unbounded=r_pgd, attacks=attacks)
    eps = eps_ratio(clean=original, unbounded=pgd, paired=paired, target_fooling_rate=target_fooling_rate)
    if eps.mean is not None:
        out[f"{PREFIX}eps_ratio"] = eps.mean
        out[f"{PREFIX}eps_ratio_n_attacks"] = float(len(eps.per_attack))
    flag = pgd.sanity.get("fr_nondecreasing_in_eps")
    if flag is not None:
        out[f"{PREFIX}fr_nondecreasing_in_eps"] = float(flag)
    return PgdComparison(metrics=out, attacks=attacks, reference=reference, same_method=method == "pgd")


def pgd_markdown(c: PgdComparison, *, summary: dict[str, float], fgsm_sanity: dict[str, float], bound: float,
                 curves_name: str) -> list[str]:
    """The report's "FGSM or PGD retraining" section: one row per number, one column per retrained model."""
    m = c.metrics

    def pct(key: str) -> str:
        return f"{100 * m[key]:.1f}" if key in m else "–"

    def p(key: str) -> str:
        if key not in m:
            return "–"
        return "< 0.001" if m[key] < 0.001 else f"{m[key]:.2g}"

    masking = {1.0: "pass", 0.0: "**FAIL**"}
    rows = [
        ("clean test accuracy (%)", f"{100 * summary['accuracy_retrained']:.1f}", pct("pgd_accuracy_retrained"),
         p("pgd_accuracy_minus_fgsm_p")),
        ("eps_r (Eq. 15, paired, as Table III)", f"{summary['eps_ratio']:.2f}" if "eps_ratio" in summary else "–",
         f"{m['pgd_eps_ratio']:.2f}" if "pgd_eps_ratio" in m else "–", ""),
        (f"fooled within ‖δ‖₂ ≤ {bound:.4g}, mean of the six (%)", pct("fgsm_fr_at_bound"), pct("pgd_fr_at_bound"),
         p("pgd_fr_at_bound_p")),
        *((f"… {a} (%)", pct(f"fgsm_fr_at_bound_{a}"), pct(f"pgd_fr_at_bound_{a}"), p(f"pgd_fr_at_bound_{a}_p"))
          for a in c.attacks),
        *((f"… {a}, reference (%)", pct(f"fgsm_fr_at_bound_{a}"), pct(f"pgd_fr_at_bound_{a}"), "")
          for a in c.reference),
        ("fresh BIM's FR never falls as ε grows (masking check)",
         masking.get(fgsm_sanity.get("fr_nondecreasing_in_eps"), "–"),
         masking.get(m.get("pgd_fr_nondecreasing_in_eps"), "–"), ""),
    ]
    first = "retrained (fgsm_retrain.method = pgd)" if c.same_method else "FGSM-retrained"
    lines = [
        "## Beyond the study: FGSM or PGD retraining?",
        "",
        "Single-step FGSM training can overfit to its own attack and mask gradients; multi-step PGD training "
        "(Madry et al. 2018) is the standard check. Stage `pgd_retrain` retrains the original model as "
        "`fgsm_retrain` does (epochs, ε, α, learning rate) with PGD's x' (`fgsm_retrain.pgd_steps`, "
        "`pgd_rel_stepsize`); both retrained models face the same unbounded attacks on the same victims. "
        "\"Within the bound\" counts each victim's smallest adversarial found. p: exact McNemar over the same "
        "victims (test clips for the accuracy), Wilcoxon over the per-victim share of attacks for the mean "
        "(docs/PROTOCOL.md \"Adversarial retraining: FGSM or PGD\").",
        "",
    ]
    if c.same_method:
        lines += ["fgsm_retrain.method is `pgd`: both columns are PGD retrainings with the same settings, so "
                  "they should agree (a consistency check, not a comparison).", ""]
    lines += [f"| | {first} | PGD-retrained | p |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += ["", f"![FGSM vs PGD robustness curves]({curves_name})", ""]
    return lines
