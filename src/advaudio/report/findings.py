"""The study's three qualitative findings, checked against this configuration's numbers.

1. FGSM adversarial training lowers clean accuracy (Table I).
2. Attacking the retrained model needs larger perturbations: eps_r >= 1 on average (Table III).
3. Within ||delta||_2 <= bound the retrained model is fooled less often than the original (Table II).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One finding: the study's claim, whether it holds here (``None``: cannot be assessed) and why."""

    claim: str
    holds: bool | None
    evidence: str

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


def _accuracy_finding(m: dict[str, float]) -> Finding:
    drop = m["accuracy_drop"]
    before, after = 100.0 * m["accuracy"], 100.0 * m["accuracy_retrained"]
    direction = "lowers" if drop > 0 else ("leaves unchanged" if drop == 0 else "raises")
    evidence = f"FGSM retraining {direction} clean test accuracy: {before:.2f} % -> {after:.2f} % ({-drop:+.2f} points"
    if "accuracy_drop_relative" in m:
        evidence += f", {-100.0 * m['accuracy_drop_relative']:+.1f} % relative"
    evidence += ")."
    if "accuracy_control" in m:
        evidence += (
            f" Control: the same retraining with the clean loss only reaches {100.0 * m['accuracy_control']:.2f} %, "
            f"so adversarial training accounts for {-m['accuracy_drop_vs_control']:+.2f} points."
        )
    return Finding(claim="Adversarial training lowers clean accuracy", holds=drop > 0, evidence=evidence)


def _eps_finding(m: dict[str, float], target: float) -> Finding:
    claim = "Attacking the retrained model needs larger perturbations (eps_r >= 1 on average)"
    if "eps_ratio" not in m:
        evidence = "No attack succeeded against both models, so eps_r is undefined."
        return Finding(claim=claim, holds=None, evidence=evidence)
    ratio = m["eps_ratio"]
    n = int(m["eps_ratio_n_attacks"])
    evidence = f"Mean eps_r over {n} attack(s) is {ratio:.3f} ({'>=' if ratio >= 1 else '<'} 1)"
    if m.get("eps_ratio_strict", 1.0) == 0.0:
        evidence += (
            f"; no attack reached FR >= {target:.2f} on both models, so this mean is over attacks that "
            "succeeded at all and is not the study's eps_r"
        )
    return Finding(claim=claim, holds=ratio >= 1.0, evidence=evidence + ".")


def _bounded_finding(m: dict[str, float], bound: float) -> Finding:
    retrained, clean = 100.0 * m["bounded_fooling_rate"], 100.0 * m["bounded_fooling_rate_clean"]
    holds = m["bounded_fooling_rate"] < m["bounded_fooling_rate_clean"]
    relation = "below" if holds else ("equal to" if retrained == clean else "above")
    evidence = (
        f"Mean fooling rate with ||delta||_2 <= {bound:.3g}: retrained {retrained:.2f} % is {relation} "
        f"the original model's {clean:.2f} % (the same bounded attack on both models)."
    )
    return Finding(
        claim=f"Within ||delta||_2 <= {bound:.3g} the retrained model is fooled less often",
        holds=holds,
        evidence=evidence,
    )
