"""The reference attacks (APGD) against the study's six, within the L2 bound: does a strong attack find many more
adversarials than the strongest of the six? If so, the six overstate that model's robustness (docs/PROTOCOL.md
"Reference attack").

For each model (the original, from ``attack@original_bounded``; the retrained one, from
``attack@retrained_bounded``) the best reference attack's bounded fooling rate is set against the best study
attack's, on the same victims: the gap in points and an exact McNemar p over the victims. A model is flagged
when the gap is at least :data:`GAP_POINTS` and p < 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advaudio.evaluation.ball import within_bound
from advaudio.evaluation.stats import mcnemar_p, significant
from advaudio.report.paired import VictimResults

GAP_POINTS = 10.0  # "much higher": the smallest gap in fooling-rate points that flags a model (with p < 0.05)
MODELS: tuple[tuple[str, str], ...] = (("original", "original_bounded"), ("retrained", "retrained_bounded"))


@dataclass(frozen=True)
class ReferenceCheck:
    """One model's strongest study attack against its strongest reference attack, within the bound."""

    model: str  # "original" | "retrained"
    n_victims: int
    best_study: str
    best_study_rate: float
    best_reference: str
    best_reference_rate: float
    rates: dict[str, float]  # every reference attack's bounded fooling rate
    p: float

    @property
    def gap_points(self) -> float:
        return 100.0 * (self.best_reference_rate - self.best_study_rate)

    @property
    def flagged(self) -> bool:
        return self.gap_points >= GAP_POINTS and significant(self.p)


def reference_checks(
    *, results: dict[str, VictimResults], study: list[str], reference: list[str], bound: float
) -> list[ReferenceCheck]:
    """One :class:`ReferenceCheck` per model; none when ``reference`` is empty.

    ``results`` maps the attack modes to their per-victim results, read with the study and reference attacks.
    The strongest attack of a group is the one with the highest bounded fooling rate (the first listed on a tie).
    """
    if not reference:
        return []
    checks = []
    for model, mode in MODELS:
        r = results[mode]
        hits = {a: r.success[a] & within_bound(r.l2[a], bound) for a in [*study, *reference]}
        rate = {a: float(np.mean(h)) for a, h in hits.items()}
        best_s = max(study, key=lambda a: rate[a])
        best_r = max(reference, key=lambda a: rate[a])
        checks.append(ReferenceCheck(
            model=model, n_victims=r.n_victims, best_study=best_s, best_study_rate=rate[best_s],
            best_reference=best_r, best_reference_rate=rate[best_r], rates={a: rate[a] for a in reference},
            p=mcnemar_p(hits[best_r], hits[best_s]),
        ))
    return checks


def reference_metrics(checks: list[ReferenceCheck]) -> dict[str, float]:
    """The summary.json keys: per model (``original``, ``retrained``) ``reference_fooling_rate_<model>_<attack>``,
    ``reference_gap_<model>`` (points), ``reference_gap_<model>_p`` and ``reference_flag_<model>`` (1/0)."""
    out: dict[str, float] = {}
    for c in checks:
        for attack, rate in c.rates.items():
            out[f"reference_fooling_rate_{c.model}_{attack}"] = rate
        out[f"reference_gap_{c.model}"] = c.gap_points
        out[f"reference_gap_{c.model}_p"] = c.p
        out[f"reference_flag_{c.model}"] = 1.0 if c.flagged else 0.0
    return out


def reference_markdown(checks: list[ReferenceCheck], *, bound: float) -> list[str]:
    """The report's "Reference attack" section (empty when no reference attack ran)."""
    if not checks:
        return []
    lines = [
        "## Beyond the study: a strong reference attack",
        "",
        f"APGD (L2, Croce & Hein 2020) runs in the same bounded budget search as the six (‖δ‖₂ ≤ {bound:.4g}). "
        f"A model is flagged when the best APGD variant fools at least {GAP_POINTS:.0f} points more victims than "
        "the best of the six and the difference is significant (exact McNemar, 5 %): there the six overstate "
        "its robustness (docs/PROTOCOL.md \"Reference attack\").",
        "",
        "| model | victims | best of the six (%) | best APGD (%) | gap (points) | p | flagged |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        p = "< 0.001" if c.p < 0.001 else f"{c.p:.2g}"
        lines.append(f"| {c.model} | {c.n_victims} | {c.best_study} {100 * c.best_study_rate:.1f} | "
                     f"{c.best_reference} {100 * c.best_reference_rate:.1f} | {c.gap_points:+.1f} | {p} | "
                     f"{'**yes**' if c.flagged else 'no'} |")
    return lines + [""]


def flagged_runs(seeds: dict[tuple[str, str, str], dict[int, dict[str, float]]]) -> list[dict[str, object]]:
    """The grid's runs (cell and seed) with a flagged model, from their summaries (``reference_flag_<model>``).

    Each entry: ``dataset``, ``representation``, ``model``, ``seed``, ``flagged`` (the model: ``original`` or
    ``retrained``), ``gap_points`` and ``p``. Runs without a reference attack have no flag keys and never appear.
    """
    out: list[dict[str, object]] = []
    for (d, r, m), per_seed in seeds.items():
        for seed, metrics in per_seed.items():
            for model, _ in MODELS:
                if metrics.get(f"reference_flag_{model}") == 1.0:
                    out.append({"dataset": d, "representation": r, "model": m, "seed": seed, "flagged": model,
                                "gap_points": metrics[f"reference_gap_{model}"],
                                "p": metrics[f"reference_gap_{model}_p"]})
    return out


def flagged_markdown(flags: list[dict[str, object]], *, any_reference: bool) -> list[str]:
    """The grid's "Reference attack" section: the flagged runs, or that none was (empty without any reference)."""
    if not any_reference:
        return []
    lines = ["\n## Reference attack (APGD)\n"]
    if not flags:
        return lines + [f"No run has a model where APGD fools {GAP_POINTS:.0f}+ points more victims within the "
                        "bound than the best of the six (docs/PROTOCOL.md \"Reference attack\").\n"]
    lines.append(f"Runs where APGD fools at least {GAP_POINTS:.0f} points more victims within the bound than the "
                 "best of the six (McNemar p < 0.05): there the six overstate robustness.\n")
    for f in flags:
        lines.append(f"- {f['dataset']} / {f['representation']} / {f['model']}, seed {f['seed']}: the "
                     f"{f['flagged']} model, +{float(f['gap_points']):.1f} points (p = {float(f['p']):.2g})")
    return lines + [""]
