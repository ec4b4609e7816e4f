"""Findings over seeds: a cell's headline numbers per seed, their mean and sd, and a test over the seeds.

One seed's accuracy on 80 test clips is known to about ±9 points, so a finding of a few points says nothing
until it holds across training runs. For each of the study's findings, every seed gives one number ``d_s`` whose
sign is the finding's direction (docs/PROTOCOL.md "Findings over seeds"):

- accuracy: ``accuracy - 1/n_classes`` (the model learns: above chance);
- accuracy drop: ``accuracy_drop`` in points (FGSM retraining lowers clean accuracy);
- bounded fooling rate: ``bounded_fooling_rate_original - bounded_fooling_rate`` (retraining lowers the
  fooling rate within the L2 bound);
- ε_r: ``log(eps_ratio)`` (the retrained model needs larger perturbations, ε_r > 1).

The test is a two-sided one-sample t-test of the ``d_s`` against 0 (the paired t-test on per-seed
differences; :func:`scipy.stats.ttest_1samp`): it treats each seed's number, which already averages the
victims of that seed, as one observation, so seeds and victims both enter its variance. A sign test would need
6 seeds before any p could fall below 0.05; the t-test is usable from 3. The report says how many seeds agree
on the direction and whether p < 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from scipy import stats

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Finding:
    """One finding: the summary key it reports and the per-seed number whose sign is its direction."""

    key: str
    claim: str
    direction: Callable[[Mapping[str, float]], float]
    needs: tuple[str, ...]


FINDINGS = (
    Finding("accuracy", "the model classifies above chance (accuracy > 1/n_classes)",
            lambda m: m["accuracy"] - 1.0 / m["n_classes"], ("accuracy", "n_classes")),
    Finding("accuracy_drop", "FGSM retraining lowers clean accuracy (drop > 0 points)",
            lambda m: m["accuracy_drop"], ("accuracy_drop",)),
    Finding("bounded_fooling_rate", "retraining lowers the bounded fooling rate (original - retrained > 0)",
            lambda m: m["bounded_fooling_rate_original"] - m["bounded_fooling_rate"],
            ("bounded_fooling_rate", "bounded_fooling_rate_original")),
    Finding("eps_ratio", "the retrained model needs larger perturbations (eps_r > 1)",
            lambda m: math.log(m["eps_ratio"]), ("eps_ratio",)),
)


@dataclass(frozen=True)
class SeedResult:
    """A finding over seeds: the reported value per seed, its mean and sd (ddof 1), the test of its direction."""

    key: str
    claim: str
    values: dict[int, float]
    mean: float
    sd: float | None  # None with one seed
    p_value: float | None  # None with fewer than 2 seeds, or when every d_s is equal (no spread to test)
    agree: int  # seeds whose d_s > 0
    n_seeds: int

    @property
    def significant(self) -> bool:
        """Whether the direction holds at the 5 % level."""
        return self.p_value is not None and self.p_value < SIGNIFICANCE and self.agree * 2 > self.n_seeds

    def to_json(self) -> dict:
        """Numbers for the summary JSON (seeds as string keys)."""
        return {"claim": self.claim, "per_seed": {str(s): v for s, v in self.values.items()}, "mean": self.mean,
                "sd": self.sd, "p_value": self.p_value, "agree": self.agree, "n_seeds": self.n_seeds,
                "significant": self.significant}


def direction_test(values: list[float]) -> float | None:
    """Two-sided p of a one-sample t-test of ``values`` against 0; None below 2 values or without spread."""
    spread = float(np.ptp(values)) if values else 0.0
    if len(values) < 2 or spread <= 1e-12 * max(1.0, float(np.max(np.abs(values)))):
        return None  # equal up to rounding: a t statistic would be rounding noise
    return float(stats.ttest_1samp(np.asarray(values, dtype=float), 0.0).pvalue)


def findings_over_seeds(per_seed: Mapping[int, Mapping[str, float]]) -> dict[str, SeedResult]:
    """Every finding of :data:`FINDINGS` whose numbers every seed has, over the seeds of ``per_seed``
    (seed -> that seed's ``metrics/summary.json``)."""
    seeds = sorted(per_seed)
    out: dict[str, SeedResult] = {}
    for finding in FINDINGS:
        if not seeds or not all(all(k in per_seed[s] for k in finding.needs) for s in seeds):
            continue
        if finding.key == "eps_ratio" and not all(per_seed[s]["eps_ratio"] > 0 for s in seeds):
            continue
        values = {s: float(per_seed[s][finding.key]) for s in seeds}
        directions = [finding.direction(per_seed[s]) for s in seeds]
        out[finding.key] = SeedResult(
            key=finding.key, claim=finding.claim, values=values, mean=float(np.mean(list(values.values()))),
            sd=float(np.std(list(values.values()), ddof=1)) if len(seeds) > 1 else None,
            p_value=direction_test(directions), agree=sum(d > 0 for d in directions), n_seeds=len(seeds),
        )
    return out


def mean_metrics(per_seed: Mapping[int, Mapping[str, float]]) -> dict[str, float]:
    """The mean over seeds of every metric all seeds have (a table cell of several seeds)."""
    seeds = sorted(per_seed)
    if not seeds:
        return {}
    keys = [k for k in per_seed[seeds[0]] if all(k in per_seed[s] for s in seeds)]
    return {k: float(np.mean([per_seed[s][k] for s in seeds])) for k in keys}


def findings_markdown(results: Mapping[str, SeedResult]) -> list[str]:
    """Markdown lines, one per finding: mean ± sd, seeds agreeing, p and whether it holds at 5 %."""
    lines = []
    for r in results.values():
        spread = f" ± {r.sd:.3g}" if r.sd is not None else ""
        p = "n/a" if r.p_value is None else f"{r.p_value:.3g}"
        verdict = "holds at 5 %" if r.significant else "not shown at 5 %"
        lines.append(f"- {r.claim}: {r.key} {r.mean:.3g}{spread} over {r.n_seeds} seed(s); "
                     f"{r.agree}/{r.n_seeds} seeds agree; p = {p} ({verdict})")
    return lines
