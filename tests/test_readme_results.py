"""The README's Results block is the committed metrics' (python -m advaudio.report.readme writes it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advaudio.report import readme

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_readme_states_the_committed_metrics():
    assert readme.main(["--readme", str(ROOT / "README.md"), "--metrics", str(ROOT / "metrics"),
                        "--seeds", str(ROOT / "reports/seeds/tables.json"), "--check"]) == 0


def test_a_readme_without_the_markers_is_refused_and_a_stale_block_is_found(tmp_path):
    with pytest.raises(ValueError, match="results:start"):
        readme.replace_block("no block here", "x")
    stale = tmp_path / "README.md"
    stale.write_text(f"intro\n{readme.START}\n| Table I: 99.9 |\n{readme.END}\nrest\n")
    assert readme.main(["--readme", str(stale), "--metrics", str(ROOT / "metrics"), "--check"]) == 1
    assert readme.main(["--readme", str(stale), "--metrics", str(ROOT / "metrics")]) == 0
    text = stale.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n") and "99.9" not in text


def test_the_sizing_sentence_has_the_closed_form_counts():
    # p = 0.5, ±6 points: 1.96^2 * 0.25 / 0.0036 = 266.8 -> 267; p = 0.9, ±6: 1.96^2 * 0.09 / 0.0036 = 96.04 -> 97
    assert readme.clips_for_half_width(0.5, 0.06) == 267 and readme.clips_for_half_width(0.9, 0.06) == 97
    s = {"accuracy": 0.9, "accuracy_ci_low": 0.8, "accuracy_ci_high": 0.95, "n_test": 80.0,
         "bounded_fooling_rate_original": 0.5, "bounded_fooling_rate_original_ci_low": 0.35,
         "bounded_fooling_rate_original_ci_high": 0.65}
    text = readme.sizing_sentence(s, n_victims=40)
    assert "80 test clips give accuracy ±7.5 points, 40 victims the mean bounded fooling rate ±15.0" in text
    assert "about 97 test clips for accuracy and 267 victims for one attack" in text


def test_the_spread_over_seeds_is_computed_from_the_grids_findings():
    finding = {"per_seed": {"0": 0.8, "1": 0.7}, "mean": 0.75, "sd": 0.0707, "p_value": 0.03, "agree": 2, "n_seeds": 2}
    tables = {"seeds": [{"dataset": "synth", "representation": "stft", "model": "resnet56", "seeds": [0, 1],
                         "findings": {"accuracy": finding}}]}
    lines = readme.spread_markdown(tables, {"n_classes": 10.0})
    row = next(line for line in lines if line.startswith("| clean test accuracy"))
    # mean 75.0, sd 7.07: the range is 75.0 -/+ 14.14
    assert row == "| clean test accuracy (%) | 80.0 | 70.0 | 75.0 ± 7.07 | 60.9 to 89.1 | 2/2, p = 0.03 |"
    assert readme.spread_markdown({"seeds": [{**tables["seeds"][0], "seeds": [0]}]}, {"n_classes": 10.0}) == []


def test_the_reference_sentence_names_the_best_apgd_and_the_flag():
    s = {"reference_fooling_rate_original_apgd_ce": 0.4, "reference_fooling_rate_original_apgd_dlr": 0.45,
         "reference_gap_original": 10.0, "reference_gap_original_p": 0.01, "reference_flag_original": 1.0,
         "reference_fooling_rate_retrained_apgd_ce": 0.1, "reference_fooling_rate_retrained_apgd_dlr": 0.05,
         "reference_gap_retrained": 0.0, "reference_gap_retrained_p": 1.0, "reference_flag_retrained": 0.0}
    text = readme.reference_sentence(s)
    assert "the original model 45.0 % (apgd_dlr; +10.0 points against the best of the six, p = 0.01, flagged" in text
    assert "the retrained model 10.0 % (apgd_ce; +0.0 points against the best of the six, p = 1, not flagged)" in text


def test_the_transfer_and_pgd_sentences_state_the_summary():
    s = {"transfer_masking_flag": 1.0, "transfer_masking_gap": 20.0, "transfer_masking_p": 0.02,
         "pgd_accuracy_retrained": 0.6625, "accuracy_retrained": 0.8875, "pgd_accuracy_minus_fgsm_p": 0.0004,
         "pgd_bounded_fooling_rate": 0.05, "bounded_fooling_rate": 0.125, "pgd_bounded_fooling_rate_p": 0.3, "eps_ratio": 1.83,
         "pgd_eps_ratio": 2.66}
    transfer = {"masking": {"n": 36, "transfer": {"cw": 0.5, "pia": 0.2}, "white_box": {"cw": 0.3, "pia": 0.0},
                            "best_transfer": "cw", "best_white_box": "cw"}}
    text = readme.transfer_sentence(s, transfer)
    assert ("Of the retrained model's 36 correctly classified victims, the original model's bounded adversarials "
            "fool at most 50.0 % (cw), its own white-box attacks 30.0 % (cw): +20.0 points, p = 0.02, flagged") in text
    assert "not flagged" in readme.transfer_sentence({**s, "transfer_masking_flag": 0.0}, transfer)
    text = readme.pgd_sentence(s)
    assert "clean accuracy 66.2 % vs FGSM's 88.8 % (p < 0.001)" in text
    assert "mean of the six, 5.0 % vs 12.5 % (p = 0.3), ε_r 2.66 vs 1.83" in text
