"""The study's three qualitative findings, checked against this configuration's numbers.

1. FGSM adversarial training lowers clean accuracy (Table I).
2. Attacking the retrained model needs larger perturbations: eps_r >= 1 on average (Table III).
3. Within ||delta||_2 <= bound the retrained model is fooled less often than the original (Table II).

Each finding carries the p-value of its paired test on the same clips or victims (docs/PROTOCOL.md
"Uncertainty"): McNemar on per-clip correctness (1), a bootstrap over victims of the paired eps_r against 1
(2), Wilcoxon signed-rank on the per-victim share of attacks that fool the victim (3); the evidence says
whether the difference is significant at 5 %.
"""

from __future__ import annotations

from dataclasses import dataclass

from advaudio.evaluation.stats import significant


@dataclass(frozen=True)
class Finding:
    """One finding: the study's claim, whether it holds here (``None``: cannot be assessed) and why."""

    claim: str
    holds: bool | None
    evidence: str
    p_value: float | None = None

    @property
    def significant(self) -> bool | None:
        """Whether the paired test rejects "no difference" at 5 % (``None`` without a test)."""
        return None if self.p_value is None else significant(self.p_value)

    @property
    def verdict(self) -> str:
        """``"holds"``, ``"does not hold"`` or ``"cannot be assessed"``."""
        return {True: "holds", False: "does not hold", None: "cannot be assessed"}[self.holds]


def check_findings(*, metrics: dict[str, float], bound: float, target_fooling_rate: float) -> list[Finding]:
    """Evaluate the three findings from ``metrics/summary.json`` numbers.

    Parameters
    ----------
    metrics : dict
        The summary metrics (``accuracy``, ``accuracy_retrained``, ``accuracy_drop``, ``eps_ratio``, ...).
    bound : float
        The L2 bound the attack stages applied (``attack.bound`` at this input size), quoted in the text.
    target_fooling_rate : float
        ``attack.target_fooling_rate``, quoted in the text.
    """
    return [
        _accuracy_finding(metrics),
        _eps_finding(metrics, target_fooling_rate),
        _bounded_finding(metrics, bound),
    ]


def _significance(p: float | None, test: str) -> str:
    if p is None:
        return ""
    verdict = "significant" if significant(p) else "not significant"
    shown = "p < 0.001" if p < 0.001 else f"p = {p:.3g}"
    return f" {test}: {shown}, {verdict} at 5 %."


def _ci(m: dict[str, float], key: str, *, percent: bool = True) -> str:
    if f"{key}_ci_low" not in m:
        return ""
    scale = 100.0 if percent else 1.0
    return f" [95 % CI {scale * m[key + '_ci_low']:.{2 if percent else 3}f}, {scale * m[key + '_ci_high']:.{2 if percent else 3}f}]"


def _accuracy_finding(m: dict[str, float]) -> Finding:
    drop = m["accuracy_drop"]
    before, after = 100.0 * m["accuracy"], 100.0 * m["accuracy_retrained"]
    direction = "lowers" if drop > 0 else ("leaves unchanged" if drop == 0 else "raises")
    evidence = (f"FGSM retraining {direction} clean test accuracy: {before:.2f} %{_ci(m, 'accuracy')} -> "
                f"{after:.2f} %{_ci(m, 'accuracy_retrained')} ({-drop:+.2f} points")
    if "accuracy_drop_relative" in m:
        evidence += f", {-100.0 * m['accuracy_drop_relative']:+.1f} % relative"
    evidence += ")."
    if "accuracy_control" in m:
        evidence += (
            f" Control: the same retraining with the clean loss only reaches {100.0 * m['accuracy_control']:.2f} %, "
            f"so adversarial training accounts for {-m['accuracy_drop_vs_control']:+.2f} points."
        )
    p = m.get("accuracy_drop_p")
    evidence += _significance(p, "McNemar on the same test clips")
    return Finding(claim="Adversarial training lowers clean accuracy", holds=drop > 0, evidence=evidence, p_value=p)


def _eps_finding(m: dict[str, float], target: float) -> Finding:
    claim = "Attacking the retrained model needs larger perturbations (eps_r >= 1 on average)"
    if "eps_ratio" not in m:
        evidence = "No attack succeeded against both models, so eps_r is undefined."
        return Finding(claim=claim, holds=None, evidence=evidence)
    ratio = m["eps_ratio"]
    n = int(m["eps_ratio_n_attacks"])
    pairs = int(m.get("eps_ratio_n_pairs", 0))
    evidence = (f"Mean eps_r over {n} attack(s) is {ratio:.3f}{_ci(m, 'eps_ratio', percent=False)} "
                f"({'>=' if ratio >= 1 else '<'} 1), over {pairs} paired victim-attack cases")
    if "eps_ratio_unpaired" in m:
        evidence += f" (unpaired, as in the study: {m['eps_ratio_unpaired']:.3f})"
    if m.get("eps_ratio_strict", 1.0) == 0.0:
        evidence += (
            f"; no attack reached FR >= {target:.2f} on both models, so this mean is over attacks that "
            "succeeded at all and is not the study's eps_r"
        )
    p = m.get("eps_ratio_p")
    evidence += "." + _significance(p, "Bootstrap over victims against eps_r = 1")
    return Finding(claim=claim, holds=ratio >= 1.0, evidence=evidence, p_value=p)


def _bounded_finding(m: dict[str, float], bound: float) -> Finding:
    retrained, clean = 100.0 * m["bounded_fooling_rate"], 100.0 * m["bounded_fooling_rate_original"]
    holds = m["bounded_fooling_rate"] < m["bounded_fooling_rate_original"]
    relation = "below" if holds else ("equal to" if retrained == clean else "above")
    evidence = (
        f"Mean fooling rate with ||delta||_2 <= {bound:.3g}: retrained {retrained:.2f} %"
        f"{_ci(m, 'bounded_fooling_rate')} is {relation} the original model's {clean:.2f} %"
        f"{_ci(m, 'bounded_fooling_rate_original')} (the same bounded attack on both models, same victims)."
    )
    p = m.get("bounded_fooling_rate_p")
    evidence += _significance(p, "Wilcoxon signed-rank on the per-victim share of attacks that fool it")
    return Finding(
        claim=f"Within ||delta||_2 <= {bound:.3g} the retrained model is fooled less often",
        holds=holds,
        evidence=evidence,
        p_value=p,
    )
