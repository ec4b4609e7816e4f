"""FGSM against PGD retraining in the report (advaudio.report.pgd): known answers on hand-made per-victim results,
stale inputs named, and the section's rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advaudio.errors import DataError
from advaudio.report.inputs import AttackMetrics
from advaudio.report.paired import VictimResults
from advaudio.report.pgd import compare_pgd, pgd_markdown

BOUND = 1.0
N = 6
LABELS = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])  # ten test clips
PREDICTIONS = {  # the FGSM-retrained model gets 8 right, the PGD-retrained one 6
    "retrained": np.array([0, 1, 0, 1, 0, 1, 0, 1, 1, 0]),
    "pgd": np.array([0, 1, 0, 1, 0, 1, 1, 0, 1, 0]),
    "original": LABELS.copy(),
}
L2 = {  # per victim, the smallest adversarial found by the unbounded search (all succeed but where said)
    "original": {"a": np.full(N, 1.0), "b": np.full(N, 0.25), "r": np.full(N, 0.5)},
    "retrained": {"a": np.array([0.5, 0.5, 2, 2, 2, 2]), "b": np.full(N, 0.5), "r": np.full(N, 0.5)},
    "pgd": {"a": np.full(N, 2.0), "b": np.array([0.5, 0.5, 0.5, 2, 2, 2]), "r": np.full(N, 0.5)},
}


def results(model: str, *, r_success: bool = True) -> VictimResults:
    success = {a: np.ones(N, dtype=bool) for a in ("a", "b")}
    success["r"] = np.full(N, r_success)
    return VictimResults(path=Path(f"build/attacks/{model}/results.npz"), l2=L2[model], success=success,
                         model_correct=np.ones(N, dtype=bool), test_predictions=PREDICTIONS[model],
                         test_labels=LABELS)


def metrics(model: str, fr_at_bound: dict[str, float], *, sanity: float = 1.0) -> AttackMetrics:
    attacks = {a: {"fooling_rate": 1.0, "fr_at_bound": fr_at_bound[a], "mean_l2": float(L2[model][a].mean()),
                   "level": 1, "n_levels": 1} for a in ("a", "b")}
    return AttackMetrics(path=Path(f"metrics/attack_{model}.json"), attacks=attacks,
                         sanity={"fr_nondecreasing_in_eps": sanity}, n_victims=N, bound=BOUND,
                         reference={"r": {"fooling_rate": 1.0, "fr_at_bound": 0.0, "level": 1, "n_levels": 1}})


def compare(*, pgd_fr=None, method="fgsm", pgd_retrain=None):
    return compare_pgd(
        original=metrics("original", {"a": 1.0, "b": 1.0}),
        fgsm=metrics("retrained", {"a": 2 / 6, "b": 1.0}),
        pgd=metrics("pgd", pgd_fr or {"a": 0.0, "b": 0.5}, sanity=0.0),
        results={"original": results("original"), "retrained": results("retrained"),
                 "pgd": results("pgd", r_success=False)},
        pgd_retrain=pgd_retrain or {"test_accuracy": 0.6, "clean_test_accuracy": 0.8},
        pgd_retrain_path="metrics/pgd_retrain.json", accuracy_fgsm=0.8, target_fooling_rate=0.9, method=method,
        seed=0)


def test_known_answers():
    c = compare()
    m = c.metrics
    assert m["fgsm_fr_at_bound_a"] == pytest.approx(1 / 3) and m["pgd_fr_at_bound_a"] == 0.0
    assert m["fgsm_fr_at_bound_b"] == 1.0 and m["pgd_fr_at_bound_b"] == 0.5
    assert m["fgsm_fr_at_bound"] == pytest.approx(2 / 3) and m["pgd_fr_at_bound"] == pytest.approx(0.25)
    assert m["pgd_fr_at_bound_b_p"] == pytest.approx(2 * 0.5 ** 3)  # three discordant victims, one way
    assert m["pgd_fr_at_bound_a_p"] == pytest.approx(2 * 0.5 ** 2)
    assert m["pgd_fr_at_bound_ci_low"] <= m["pgd_fr_at_bound"] <= m["pgd_fr_at_bound_ci_high"]
    assert (m["fgsm_fr_at_bound_r"], m["pgd_fr_at_bound_r"]) == (1.0, 0.0)  # APGD: shown, outside the means
    assert m["pgd_accuracy_retrained"] == 0.6 and m["pgd_accuracy_drop"] == pytest.approx(20.0)
    assert m["pgd_accuracy_minus_fgsm"] == pytest.approx(-20.0)
    assert m["pgd_accuracy_minus_fgsm_p"] == pytest.approx(2 * 0.5 ** 2)  # clips 6 and 7: right, then wrong
    assert m["pgd_eps_ratio"] == pytest.approx((2.0 / 1.0 + 1.25 / 0.25) / 2)  # Eq. 15, paired, per attack
    assert m["pgd_fr_nondecreasing_in_eps"] == 0.0
    assert not c.same_method and (c.attacks, c.reference) == (["a", "b"], ["r"])


def test_stale_inputs_are_named():
    with pytest.raises(DataError, match=r"metrics/attack_pgd.json: b fr_at_bound 0.75 but the stored results give"):
        compare(pgd_fr={"a": 0.0, "b": 0.75})
    with pytest.raises(DataError, match=r"build/attacks/pgd/results.npz: stored predictions give accuracy 0.6000, "
                                        r"metrics/pgd_retrain.json 0.7000"):
        compare(pgd_retrain={"test_accuracy": 0.7})


def test_section_rows_and_the_same_method_note():
    c = compare()
    summary = {"accuracy_retrained": 0.8, "eps_ratio": 1.5}
    text = "\n".join(pgd_markdown(c, summary=summary, fgsm_sanity={"fr_nondecreasing_in_eps": 1.0}, bound=BOUND,
                                  curves_name="retraining_curves.png"))
    assert "| clean test accuracy (%) | 80.0 | 60.0 | 0.5 |" in text
    assert "| fooled within ‖δ‖₂ ≤ 1, mean of the six (%) | 66.7 | 25.0 |" in text
    assert "| … r, reference (%) | 100.0 | 0.0 |" in text
    assert "| eps_r (Eq. 15, paired, as Table III) | 1.50 | 3.50 |" in text
    assert "| pass | **FAIL** |" in text and "![FGSM vs PGD robustness curves](retraining_curves.png)" in text
    assert "consistency check" not in text
    same = "\n".join(pgd_markdown(compare(method="pgd"), summary=summary, fgsm_sanity={}, bound=BOUND,
                                  curves_name="c.png"))
    assert "consistency check" in same and "retrained (fgsm_retrain.method = pgd)" in same
