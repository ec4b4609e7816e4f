"""Per-victim intervals and paired tests behind Tables I-III (report/paired.py) on hand-made results."""

from pathlib import Path

import numpy as np
import pytest

from advaudio.errors import DataError
from advaudio.evaluation.ball import BOUND_RTOL
from advaudio.report.paired import (
    VictimResults,
    accuracy_uncertainty,
    bounded_uncertainty,
    eps_ratio_interval,
    paired_eps,
    read_victim_results,
)


def results(*, l2, success, correct=None, preds=None, labels=None, attack="deepfool") -> VictimResults:
    n = len(l2)
    labels = np.zeros(4, dtype=np.int64) if labels is None else labels
    return VictimResults(
        path=Path("results.npz"), l2={attack: np.asarray(l2, dtype=np.float64)},
        success={attack: np.asarray(success, dtype=bool)},
        model_correct=np.ones(n, dtype=bool) if correct is None else np.asarray(correct, dtype=bool),
        test_predictions=labels if preds is None else preds, test_labels=labels,
    )


def test_eps_ratio_pairs_victims_both_models_classify_correctly_and_both_attacks_fool():
    clean = results(l2=[1.0, 1.0, 1.0, 1.0, 4.0], success=[1, 1, 1, 1, 1])
    # victim 0: the retrained model already misclassifies it (DeepFool: fooled at ||delta|| = 0);
    # victim 4: only the original model was fooled
    retrained = results(l2=[0.0, 2.0, 2.0, 2.0, np.inf], success=[1, 1, 1, 1, 0], correct=[0, 1, 1, 1, 1])
    paired = paired_eps(clean=clean, unbounded=retrained, attacks=["deepfool"])
    assert paired.n_pairs["deepfool"] == 3
    assert paired.ratio["deepfool"] == pytest.approx(2.0)  # unpaired: mean(0, 2, 2, 2) / mean(1, 1, 1, 1, 4) = 0.94
    low, high, p = eps_ratio_interval(clean=clean, unbounded=retrained, paired=paired, attacks=["deepfool"], seed=0)
    assert low == pytest.approx(2.0) and high == pytest.approx(2.0) and p < 0.01


def test_bounded_rates_use_the_one_tolerance_and_pair_the_victims():
    bound = 0.1
    hair_above = bound * (1 + 0.5 * BOUND_RTOL)  # float32 projection lands here; it is within the bound
    clean = results(l2=[hair_above] * 8, success=[1] * 8, attack="bim_b")
    retrained = results(l2=[hair_above, hair_above, bound * 1.01, np.inf, np.inf, np.inf, np.inf, np.inf],
                        success=[1, 1, 1, 0, 0, 0, 0, 0], attack="bim_b")
    out = bounded_uncertainty(original_bounded=clean, bounded=retrained, bound=bound, attacks=["bim_b"], seed=0)
    assert out["bounded_fooling_rate_original_bim_b"] == 1.0  # a strict <= bound would give 0
    assert out["bounded_fooling_rate_bim_b"] == 0.25  # 1.01 x bound is outside
    assert out["bounded_fooling_rate"] == 0.25 and out["bounded_fooling_rate_original"] == 1.0
    assert out["bounded_fooling_rate_bim_b_p"] == pytest.approx(2 * 0.5**6)  # 6 discordant victims, one way
    assert out["bounded_fooling_rate_bim_b_ci_low"] < 0.25 < out["bounded_fooling_rate_bim_b_ci_high"]
    assert out["bounded_fooling_rate_ci_low"] <= 0.25 <= out["bounded_fooling_rate_ci_high"]
    assert out["bounded_fooling_rate_p"] < 0.05


def test_accuracy_intervals_and_mcnemar_on_the_same_clips():
    labels = np.arange(40) % 4
    wrong = (labels + 1) % 4
    original = results(l2=[1.0], success=[1], labels=labels, preds=labels)
    retrained = results(l2=[1.0], success=[1], labels=labels, preds=np.where(np.arange(40) < 6, wrong, labels))
    out = accuracy_uncertainty(original=original, retrained=retrained,
                               accuracy={"accuracy": 1.0, "accuracy_retrained": 34 / 40})
    assert out["accuracy_drop_p"] == pytest.approx(0.03125)
    assert out["accuracy_ci_low"] < 1.0 and out["accuracy_ci_high"] == pytest.approx(1.0)
    assert out["accuracy_retrained_ci_low"] < 0.85 < out["accuracy_retrained_ci_high"]
    with pytest.raises(DataError, match="stored predictions"):
        accuracy_uncertainty(original=original, retrained=retrained,
                             accuracy={"accuracy": 0.9, "accuracy_retrained": 34 / 40})


def test_read_victim_results_names_the_file_and_the_missing_array(tmp_path):
    path = tmp_path / "results.npz"
    np.savez(path, model_correct=np.ones(2, dtype=bool), test_predictions=np.zeros(3), test_labels=np.zeros(3),
             cw_l2=np.ones(2))
    with pytest.raises(DataError, match=r"results.npz: missing arrays \['cw_success'\]"):
        read_victim_results(path=path, attacks=["cw"])
    with pytest.raises(DataError, match="not found"):
        read_victim_results(path=tmp_path / "none.npz", attacks=["cw"])
