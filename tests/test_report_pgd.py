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
PREDICTIONS["retrained_bounded"], PREDICTIONS["pgd_bounded"] = PREDICTIONS["retrained"], PREDICTIONS["pgd"]
# Per victim, the adversarial's L2 norm; infinite where the attack failed. Bounded stages: within BOUND or failed.
INF = np.inf
L2 = {
    "original": {"a": np.full(N, 1.0), "b": np.full(N, 0.25), "r": np.full(N, 0.5)},
    "retrained": {"a": np.full(N, 2.0), "b": np.full(N, 0.5), "r": np.full(N, 0.5)},
    "pgd": {"a": np.full(N, 2.0), "b": np.array([0.5, 0.5, 0.5, 2, 2, 2]), "r": np.full(N, 0.5)},
    "retrained_bounded": {"a": np.array([0.5, 0.5, INF, INF, INF, INF]), "b": np.full(N, 0.5),
                          "r": np.full(N, 0.9)},
    "pgd_bounded": {"a": np.full(N, INF), "b": np.array([0.5, 0.5, 0.5, INF, INF, INF]),
                    "r": np.array([0.9, INF, INF, INF, INF, INF])},
}


def results(model: str) -> VictimResults:
    return VictimResults(path=Path(f"build/attacks/{model}/results.npz"), l2=L2[model],
                         success={a: np.isfinite(v) for a, v in L2[model].items()},
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
        fgsm={"unbounded": metrics("retrained", {"a": 0.0, "b": 1.0}),
              "bounded": metrics("retrained_bounded", {"a": 2 / 6, "b": 1.0})},
        pgd={"unbounded": metrics("pgd", {"a": 0.0, "b": 0.5}, sanity=0.0),
             "bounded": metrics("pgd_bounded", pgd_fr or {"a": 0.0, "b": 0.5})},
        results={m: results(m) for m in L2},
        pgd_retrain=pgd_retrain or {"test_accuracy": 0.6, "clean_test_accuracy": 0.8},
        pgd_retrain_path="metrics/pgd_retrain.json", accuracy_fgsm=0.8, target_fooling_rate=0.9, method=method,
        seed=0)


def test_known_answers():
    c = compare()
    m = c.metrics
    # Table II's definition on the bounded stages, PGD's side (FGSM's is Table II, already in summary.json)
    assert m["pgd_bounded_fooling_rate_a"] == 0.0 and m["pgd_bounded_fooling_rate_b"] == 0.5
    assert m["pgd_bounded_fooling_rate"] == pytest.approx(0.25)
    assert not [k for k in m if "original" in k]  # no second copy of the FGSM model's Table II numbers
    assert m["pgd_bounded_fooling_rate_b_p"] == pytest.approx(2 * 0.5 ** 3)  # three discordant victims, one way
    assert m["pgd_bounded_fooling_rate_a_p"] == pytest.approx(2 * 0.5 ** 2)
    assert m["pgd_bounded_fooling_rate_ci_low"] <= 0.25 <= m["pgd_bounded_fooling_rate_ci_high"]
    assert m["pgd_reference_fooling_rate_r"] == pytest.approx(1 / 6)  # APGD: shown, outside the means
    assert m["pgd_accuracy_retrained"] == 0.6 and m["pgd_accuracy_drop"] == pytest.approx(20.0)
    assert m["pgd_accuracy_minus_fgsm"] == pytest.approx(-20.0)
    assert m["pgd_accuracy_minus_fgsm_p"] == pytest.approx(2 * 0.5 ** 2)  # clips 6 and 7: right, then wrong
    # eps_r from the unbounded stages, paired per attack: a 2 / 1, b mean(0.5 x 3, 2 x 3) / 0.25 = 1.25 / 0.25
    assert m["pgd_eps_ratio"] == pytest.approx((2.0 / 1.0 + 1.25 / 0.25) / 2)
    assert m["pgd_fr_nondecreasing_in_eps"] == 0.0
    assert not c.same_method and (c.attacks, c.reference) == (["a", "b"], ["r"])


def test_stale_inputs_are_named():
    with pytest.raises(DataError, match=r"metrics/attack_pgd_bounded.json: b fr_at_bound 0.75 but the stored "
                                        r"results give 0.5"):
        compare(pgd_fr={"a": 0.0, "b": 0.75})
    with pytest.raises(DataError, match=r"build/attacks/pgd/results.npz: stored predictions give accuracy 0.6000, "
                                        r"metrics/pgd_retrain.json 0.7000"):
        compare(pgd_retrain={"test_accuracy": 0.7})


def test_section_rows_and_the_same_method_note():
    c = compare()
    summary = {"accuracy_retrained": 0.8, "eps_ratio": 1.5, "bounded_fooling_rate": 2 / 3,
               "bounded_fooling_rate_a": 1 / 3, "bounded_fooling_rate_b": 1.0,
               "reference_fooling_rate_retrained_r": 1.0}
    text = "\n".join(pgd_markdown(c, summary=summary, fgsm_sanity={"fr_nondecreasing_in_eps": 1.0}, bound=BOUND,
                                  curves_name="retraining_curves.png"))
    assert "| clean test accuracy (%) | 80.0 | 60.0 | 0.5 |" in text
    assert "| fooling rate with ‖δ‖₂ ≤ 1, mean of the six (%) (Table II) | 66.7 | 25.0 |" in text
    assert "| … b (%) | 100.0 | 50.0 | 0.25 |" in text
    assert "| … r, reference (%) | 100.0 | 16.7 |  |" in text
    assert "| eps_r (Eq. 15, paired, Table III) | 1.50 | 3.50 |  |" in text
    assert "| pass | **FAIL** |" in text and "![FGSM vs PGD robustness curves](retraining_curves.png)" in text
    assert "consistency check" not in text
    same = "\n".join(pgd_markdown(compare(method="pgd"), summary=summary, fgsm_sanity={}, bound=BOUND,
                                  curves_name="c.png"))
    assert "consistency check" in same and "retrained (fgsm_retrain.method = pgd)" in same
