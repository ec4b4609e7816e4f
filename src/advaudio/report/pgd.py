"""Beyond the study: the FGSM-retrained model beside the PGD-retrained one (stage ``pgd_retrain``), on the same
victims (docs/PROTOCOL.md "Adversarial retraining: FGSM or PGD").

Both retrained models face the same attack stages: the bounded one (``attack@retrained_bounded`` and
``attack@<pgd mode>_bounded``: Table II's fooling rate within the L2 bound) and the unbounded budget search
(``attack@retrained`` and ``attack@<pgd mode>``: eps_r against the original model, Eq. 15 paired as in Table
III, and the robustness curves). Differences are tested over the same victims: exact McNemar per attack, a
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
TABLE2 = "bounded_fooling_rate"  # Table II's summary keys; the PGD model's get PREFIX


@dataclass(frozen=True)
class PgdComparison:
    """The comparison's numbers (``metrics``, all in summary.json) and what the report states beside them."""

    metrics: dict[str, float]
    attacks: list[str]  # the study's attacks
    reference: list[str]  # the reference attacks (APGD), shown apart
    same_method: bool  # fgsm_retrain.method is pgd too: both models were retrained with PGD


def compare_pgd(
    *,
    original: AttackMetrics,
    fgsm: dict[str, AttackMetrics],
    pgd: dict[str, AttackMetrics],
    results: dict[str, VictimResults],
    pgd_retrain: dict[str, Any],
    pgd_retrain_path: str | Path,
    accuracy_fgsm: float,
    target_fooling_rate: float,
    method: str,
    seed: int,
) -> PgdComparison:
    """The FGSM-retrained model against the PGD-retrained one.

    Parameters
    ----------
    original : AttackMetrics
        The unbounded attack stage of the original model.
    fgsm, pgd : dict
        ``{"bounded": ..., "unbounded": ...}``: the retrained models' attack stages.
    results : dict
        Per-victim results: ``original`` (unbounded), ``retrained_bounded`` and ``retrained`` (FGSM),
        ``pgd_bounded`` and ``pgd`` (PGD).
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
    for kind in ("bounded", "unbounded"):
        f, g = fgsm[kind], pgd[kind]
        if set(g.attacks) != set(f.attacks) or set(g.reference) != set(f.reference):
            raise DataError(f"{g.path}: attacks {sorted(g.attacks)} (reference {sorted(g.reference)}) differ from "
                            f"{f.path}: {sorted(f.attacks)} ({sorted(f.reference)}); rerun the attack stages")
    r_fgsm, r_pgd = results["retrained"], results["pgd"]
    if not np.array_equal(r_fgsm.test_labels, r_pgd.test_labels):
        raise DataError(f"{r_fgsm.path} and {r_pgd.path} hold different test labels; rerun the attack stages")
    bound = pgd["bounded"].bound
    attacks, reference = sorted(fgsm["bounded"].attacks), sorted(fgsm["bounded"].reference)
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

    # bounded_uncertainty's "original" side is the FGSM-retrained model here: its rates are Table II's, already
    # in summary.json; the PGD model's rates and the paired p-values get the prefix
    within = bounded_uncertainty(original_bounded=results["retrained_bounded"], bounded=results["pgd_bounded"],
                                 bound=bound, attacks=attacks, seed=seed)
    for key, value in within.items():
        if not key.startswith(f"{TABLE2}_original"):
            out[PREFIX + key] = value
    for a in attacks:
        reported = float(pgd["bounded"].attacks[a]["fr_at_bound"])
        if abs(out[f"{PREFIX}{TABLE2}_{a}"] - reported) > 1e-9:
            raise DataError(f"{pgd['bounded'].path}: {a} fr_at_bound {reported} but the stored results give "
                            f"{out[f'{PREFIX}{TABLE2}_{a}']}; rerun the attack stages")
    r = results["pgd_bounded"]
    for a in reference:
        out[f"{PREFIX}reference_fooling_rate_{a}"] = float((r.success[a] & within_bound(r.l2[a], bound)).mean())

    paired = paired_eps(clean=results["original"], unbounded=r_pgd, attacks=attacks)
    eps = eps_ratio(clean=original, unbounded=pgd["unbounded"], paired=paired, target_fooling_rate=target_fooling_rate)
    if eps.mean is not None:
        out[f"{PREFIX}eps_ratio"] = eps.mean
        out[f"{PREFIX}eps_ratio_n_attacks"] = float(len(eps.per_attack))
    flag = pgd["unbounded"].sanity.get("fr_nondecreasing_in_eps")
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
    t2 = TABLE2

    def fgsm_pct(key: str) -> str:
        return f"{100 * summary[key]:.1f}" if key in summary else "–"

    rows = [
        ("clean test accuracy (%)", fgsm_pct("accuracy_retrained"), pct("pgd_accuracy_retrained"),
         p("pgd_accuracy_minus_fgsm_p")),
        (f"fooling rate with ‖δ‖₂ ≤ {bound:.4g}, mean of the six (%) (Table II)", fgsm_pct(t2), pct(f"pgd_{t2}"),
         p(f"pgd_{t2}_p")),
        *((f"… {a} (%)", fgsm_pct(f"{t2}_{a}"), pct(f"pgd_{t2}_{a}"), p(f"pgd_{t2}_{a}_p")) for a in c.attacks),
        *((f"… {a}, reference (%)", fgsm_pct(f"reference_fooling_rate_retrained_{a}"),
           pct(f"pgd_reference_fooling_rate_{a}"), "") for a in c.reference),
        ("eps_r (Eq. 15, paired, Table III)", f"{summary['eps_ratio']:.2f}" if "eps_ratio" in summary else "–",
         f"{m['pgd_eps_ratio']:.2f}" if "pgd_eps_ratio" in m else "–", ""),
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
        "`pgd_rel_stepsize`); both retrained models face the same bounded and unbounded attack stages on the same "
        "victims. p: exact McNemar over the same victims (test clips for the accuracy), Wilcoxon over the "
        "per-victim share of attacks for the mean "
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
