"""The `tables` stage: summary numbers, findings, the report's golden layout, errors and figures."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advaudio.config import params_from_dict
from advaudio.errors import DataError
from advaudio.report.build import build_report
from advaudio.report.findings import check_findings
from advaudio.report.inputs import read_attack_suite
from stage_trees import stage_args

GOLDEN = Path(__file__).parent / "golden"
ATTACKS = ["bim_a", "bim_b", "jsma", "deepfool", "cw", "pia"]
# eps_o and eps_a per attack: ratios 2, 1.5, 1, 2, 2, 2 (mean of ratios 1.75; ratio of means 16.5/10.75).
EPS_O = [1.0, 2.0, 4.0, 0.5, 0.25, 3.0]
EPS_A = [2.0, 3.0, 4.0, 1.0, 0.5, 6.0]
FR_BOUND_CLEAN = [0.9, 0.8, 0.7, 1.0, 0.6, 0.5]  # mean 0.75 (attack_original_bounded)
FR_BOUND_CLEAN_SEARCH = [0.2, 0.1, 0.0, 0.4, 0.1, 0.0]  # attack_original's curve at the bound: not Table II's
FR_BOUND_RETRAINED = [0.5, 0.4, 0.3, 0.6, 0.2, 0.1]  # mean 0.35
SANITY = {"fr_monotone_in_eps": 1, "adversarials_in_bounds": 1, "no_nan": 1}


def _attack_entry(*, fr: float, fr_bound: float, mean_l2: float | None, i: int) -> dict:
    entry = {"fooling_rate": fr, "level": 2 + i % 3, "n_levels": 5, "fr_at_bound": fr_bound,
             "auc": fr_bound / 2, "seconds": 1.5 + i}
    if mean_l2 is not None:
        entry.update(mean_l2=mean_l2, median_l2=mean_l2 * 0.9, mean_rms=mean_l2 / 32, mean_db=-20.0 + i)
    entry["queries" if ATTACKS[i] == "pia" else "gradient_calls"] = 100 * (i + 1)
    return entry


def make_inputs() -> dict[str, dict]:
    """Known inputs, as the producing stages write them (docs/ARCHITECTURE.md)."""
    clean = {a: _attack_entry(fr=1.0, fr_bound=FR_BOUND_CLEAN_SEARCH[i], mean_l2=EPS_O[i], i=i)
             for i, a in enumerate(ATTACKS)}
    original_bounded = {a: _attack_entry(fr=FR_BOUND_CLEAN[i], fr_bound=FR_BOUND_CLEAN[i], mean_l2=1.5, i=i)
                     for i, a in enumerate(ATTACKS)}
    unbounded = {a: _attack_entry(fr=0.95, fr_bound=FR_BOUND_RETRAINED[i], mean_l2=EPS_A[i], i=i)
                 for i, a in enumerate(ATTACKS)}
    bounded = {a: _attack_entry(fr=FR_BOUND_RETRAINED[i], fr_bound=FR_BOUND_RETRAINED[i], mean_l2=1.0, i=i)
               for i, a in enumerate(ATTACKS)}
    files = {
        "train.json": {"test_accuracy": 0.85, "macro_f1": 0.84, "epochs": 3, "n_test": 80},
        "fgsm_retrain.json": {"test_accuracy": 0.80, "clean_test_accuracy": 0.85, "accuracy_drop_points": 5.0,
                              "accuracy_drop_relative": 0.0588, "epochs": 2, "seconds": 3.0},
        "clean_finetune.json": {"test_accuracy": 0.90, "clean_test_accuracy": 0.85, "epochs": 2},
    }
    for mode, attacks in (("original", clean), ("original_bounded", original_bounded), ("retrained_bounded", bounded),
                          ("retrained", unbounded)):
        files[f"attack_{mode}.json"] = {**attacks, "mean": {"fooling_rate": 0.5}, "sanity": dict(SANITY),
                                        "n_victims": N_VICTIMS, "victims_misclassified": 0, "bound": 3.0}
    return files


def write_tree(root: Path, files: dict[str, dict], *, rng: np.random.Generator) -> None:
    """Write metrics/, the curves and build/attacks/original/examples.npz under ``root``."""
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    for name, obj in files.items():
        (root / "metrics" / name).write_text(json.dumps(obj))
    eps = np.linspace(0.0, 8.0, 9)
    for mode in ("original", "original_bounded", "retrained_bounded", "retrained"):
        d = root / "metrics" / "curves" / f"attack_{mode}"
        d.mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(ATTACKS):
            fr = np.clip(eps / (2.0 * (i + 1)), 0.0, 1.0)
            d.joinpath(f"{a}.csv").write_text(
                "epsilon,fooling_rate\n" + "".join(f"{e},{f}\n" for e, f in zip(eps, fr))
            )
    k, h, w = 2, 12, 10
    x = rng.random((k, 1, h, w), dtype=np.float32)
    arrays = {"x": x, "labels": np.array([0, 1]), "targets": np.array([1, 2]),
              "class_names": np.array(["dog", "rain", "siren"])}
    for i, a in enumerate(ATTACKS):
        arrays[f"{a}_adv"] = np.clip(x + 0.05 * rng.standard_normal(x.shape).astype(np.float32), 0, 1)
        arrays[f"{a}_l2"] = np.array([np.inf if a == "pia" else 0.5 + i, 0.7 + i])
    (root / "build" / "attacks" / "original").mkdir(parents=True, exist_ok=True)
    np.savez(root / "build" / "attacks" / "original" / "examples.npz", **arrays)
    write_results(root, files)


N_VICTIMS, N_TEST = 20, 80


def write_results(root: Path, files: dict[str, dict]) -> None:
    """Per-victim results.npz of each attack stage, consistent with the metrics files: every successful victim
    of an attack has the attack's mean_l2 (so paired and unpaired eps agree), the first round(FR * n) victims
    are the successful ones, and the test predictions give the accuracies of train.json/fgsm_retrain.json."""
    labels = np.arange(N_TEST) % 10
    for mode, acc_file in (("original", "train.json"), ("original_bounded", "train.json"),
                           ("retrained_bounded", "fgsm_retrain.json"), ("retrained", "fgsm_retrain.json")):
        metrics = files[f"attack_{mode}.json"]
        n_right = int(round(files[acc_file]["test_accuracy"] * N_TEST))
        predictions = np.where(np.arange(N_TEST) < n_right, labels, (labels + 1) % 10)
        arrays = {"model_correct": np.ones(N_VICTIMS, dtype=bool), "test_predictions": predictions,
                  "test_labels": labels}
        for a in [a for a in ATTACKS if a in metrics]:
            entry = metrics[a]
            if mode in ("original_bounded", "retrained_bounded"):
                success = np.arange(N_VICTIMS) < int(round(entry["fr_at_bound"] * N_VICTIMS))
                size = 0.5 * metrics["bound"]
            else:  # no mean_l2: the attack fooled nobody
                n_fooled = int(round(entry["fooling_rate"] * N_VICTIMS)) if "mean_l2" in entry else 0
                success, size = np.arange(N_VICTIMS) < n_fooled, entry.get("mean_l2", 1.0)
            arrays[f"{a}_success"] = success
            arrays[f"{a}_l2"] = np.where(success, size, np.inf)
        out = root / "build" / "attacks" / mode
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / "results.npz", **arrays)


def params(**attack):
    return params_from_dict({"dataset": "esc50", "dataset_dir": "data/ESC-50", "representation": "stft",
                             "model": "resnet56", "attack": {"bound": 3.0, "target_fooling_rate": 0.9, **attack}})


def run_build(root: Path):
    return build_report(params=params(), metrics_dir=root / "metrics", build_dir=root / "build",
                        reports_dir=root / "reports")


def test_summary_known_answers(tmp_path, rng):
    write_tree(tmp_path, make_inputs(), rng=rng)
    m = run_build(tmp_path).metrics
    assert m == json.loads((tmp_path / "metrics" / "summary.json").read_text())
    assert m["accuracy"] == pytest.approx(0.85)
    assert m["accuracy_drop"] == pytest.approx(5.0)
    assert m["accuracy_drop_relative"] == pytest.approx(0.05 / 0.85)
    assert m["accuracy_control"] == pytest.approx(0.90)
    assert m["accuracy_drop_vs_control"] == pytest.approx(10.0)  # control 90 % - retrained 80 %
    assert m["bounded_fooling_rate"] == pytest.approx(0.35)
    assert m["bounded_fooling_rate_original"] == pytest.approx(0.75)  # from attack_original_bounded, not the search
    assert m["eps_ratio"] == pytest.approx(1.75)  # mean of ratios, not 16.5 / 10.75
    assert m["eps_ratio_jsma"] == pytest.approx(1.0)
    assert m["eps_ratio_strict"] == 1.0 and m["eps_ratio_n_attacks"] == 6
    assert m["eps_ratio_n_pairs"] == 6 * 19  # victims fooled on both models (the retrained search: 19 of 20)
    assert m["eps_ratio_unpaired"] == pytest.approx(1.75)
    for key in ("accuracy", "accuracy_retrained", "accuracy_control", "bounded_fooling_rate",
                "bounded_fooling_rate_original", "eps_ratio", "bounded_fooling_rate_bim_a"):
        assert m[f"{key}_ci_low"] <= m[key] <= m[f"{key}_ci_high"], key
    assert 0 <= m["accuracy_drop_p"] <= 1 and m["bounded_fooling_rate_p"] < 0.05 and m["eps_ratio_p"] < 0.05
    assert all(isinstance(v, float) for v in m.values())


def test_bounded_rate_disagreeing_with_the_stored_results_is_refused(tmp_path, rng):
    files = make_inputs()
    write_tree(tmp_path, files, rng=rng)
    files["attack_retrained_bounded.json"]["cw"]["fr_at_bound"] = 0.25  # results.npz still says 0.20
    (tmp_path / "metrics" / "attack_retrained_bounded.json").write_text(json.dumps(files["attack_retrained_bounded.json"]))
    with pytest.raises(DataError, match="attack_retrained_bounded.json: cw fr_at_bound 0.25"):
        run_build(tmp_path)


def test_attack_short_of_target_is_left_out_of_eps_ratio(tmp_path, rng):
    files = make_inputs()
    files["attack_retrained.json"]["pia"]["fooling_rate"] = 0.85
    write_tree(tmp_path, files, rng=rng)
    summary = run_build(tmp_path)
    assert summary.metrics["eps_ratio"] == pytest.approx((2 + 1.5 + 1 + 2 + 2) / 5)
    assert "eps_ratio_pia" not in summary.metrics
    assert "target not reached" in summary.eps.excluded["pia"]
    assert "target not reached" in (tmp_path / "reports" / "report.md").read_text()


def test_no_attack_reaching_target_falls_back_and_is_flagged(tmp_path, rng):
    files = make_inputs()
    for entry in files["attack_original.json"].values():
        if isinstance(entry, dict) and "level" in entry:
            entry["fooling_rate"] = 0.5
    write_tree(tmp_path, files, rng=rng)
    m = run_build(tmp_path).metrics
    assert m["eps_ratio"] == pytest.approx(1.75) and m["eps_ratio_strict"] == 0.0
    text = (tmp_path / "reports" / "report.md").read_text()
    assert "is not the study's eps_r" in text


def test_no_success_omits_eps_ratio(tmp_path, rng):
    files = make_inputs()
    for entry in files["attack_retrained.json"].values():
        if isinstance(entry, dict):
            entry.pop("mean_l2", None)
    write_tree(tmp_path, files, rng=rng)
    m = run_build(tmp_path).metrics
    assert "eps_ratio" not in m and m["eps_ratio_n_attacks"] == 0
    assert "cannot be assessed" in (tmp_path / "reports" / "report.md").read_text()


def test_report_matches_golden_layout(tmp_path, rng):
    write_tree(tmp_path, make_inputs(), rng=rng)
    run_build(tmp_path)
    text = (tmp_path / "reports" / "report.md").read_text()
    golden = GOLDEN / "report.md"
    if os.environ.get("ADVAUDIO_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def _metrics(**overrides):
    base = {"accuracy": 0.85, "accuracy_retrained": 0.80, "accuracy_drop": 5.0, "accuracy_drop_relative": 0.0588,
            "bounded_fooling_rate": 0.35, "bounded_fooling_rate_original": 0.75, "eps_ratio": 1.75,
            "eps_ratio_n_attacks": 6.0, "eps_ratio_strict": 1.0}
    return {**base, **overrides}


def test_findings_hold_on_study_like_numbers():
    found = check_findings(metrics=_metrics(), bound=3.0, target_fooling_rate=0.9)
    assert [f.holds for f in found] == [True, True, True]
    assert "lowers" in found[0].evidence and "below" in found[2].evidence


def test_findings_flip_when_numbers_flip():
    flipped = _metrics(accuracy_retrained=0.9, accuracy_drop=-5.0, accuracy_drop_relative=-0.0588, eps_ratio=0.8,
                       bounded_fooling_rate=0.8)
    found = check_findings(metrics=flipped, bound=3.0, target_fooling_rate=0.9)
    assert [f.verdict for f in found] == ["does not hold"] * 3
    assert "raises" in found[0].evidence and "< 1" in found[1].evidence and "above" in found[2].evidence


@pytest.mark.parametrize("name", ["train.json", "fgsm_retrain.json", "clean_finetune.json", "attack_retrained_bounded.json"])
def test_missing_metrics_file_is_named(tmp_path, rng, name):
    write_tree(tmp_path, make_inputs(), rng=rng)
    (tmp_path / "metrics" / name).unlink()
    with pytest.raises(DataError, match=name.replace(".", r"\.") + ".*not found"):
        run_build(tmp_path)


def test_missing_key_is_named(tmp_path, rng):
    files = make_inputs()
    del files["attack_original.json"]["cw"]["fr_at_bound"]
    write_tree(tmp_path, files, rng=rng)
    with pytest.raises(DataError, match=r"attack_original\.json \[cw\].*'fr_at_bound'"):
        run_build(tmp_path)


def test_attack_sets_must_agree(tmp_path, rng):
    files = make_inputs()
    del files["attack_retrained_bounded.json"]["pia"]
    write_tree(tmp_path, files, rng=rng)
    with pytest.raises(DataError, match="attack_retrained_bounded.json"):
        read_attack_suite(metrics_dir=tmp_path / "metrics")


def test_missing_curve_is_named(tmp_path, rng):
    write_tree(tmp_path, make_inputs(), rng=rng)
    (tmp_path / "metrics" / "curves" / "attack_retrained" / "cw.csv").unlink()
    with pytest.raises(DataError, match=r"attack_retrained/cw\.csv"):
        run_build(tmp_path)


def test_figures_are_written_and_non_empty(tmp_path, rng):
    write_tree(tmp_path, make_inputs(), rng=rng)
    run_build(tmp_path)
    for name in ("figure1.png", "curves.png"):
        data = (tmp_path / "reports" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_failed_sanity_check_is_reported(tmp_path, rng):
    files = copy.deepcopy(make_inputs())
    files["attack_retrained_bounded.json"]["sanity"]["adversarials_in_bounds"] = 0
    write_tree(tmp_path, files, rng=rng)
    run_build(tmp_path)
    assert "**1 check(s) failed**" in (tmp_path / "reports" / "report.md").read_text()


def test_stage_script_reports_missing_file(tmp_path, rng):
    write_tree(tmp_path, make_inputs(), rng=rng)
    (tmp_path / "metrics" / "attack_original.json").unlink()
    (tmp_path / "params.yaml").write_text("dataset: synth\nrepresentation: stft\nmodel: resnet56\n")
    script = Path(__file__).resolve().parents[1] / "stages" / "tables.py"
    proc = subprocess.run([sys.executable, str(script), *stage_args("tables")], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "attack_original.json" in proc.stderr and "not found" in proc.stderr


def test_study_values_cover_the_published_grid():
    from advaudio.report.layout import MODELS, REPRESENTATIONS
    from advaudio.report.study_values import published_cell

    cells = [published_cell(dataset=d, representation=r, model=m)
             for d in ("esc50", "urbansound8k") for r in REPRESENTATIONS for m in MODELS]
    assert all(c is not None for c in cells) and len(cells) == 48
    assert published_cell(dataset="urbansound8k", representation="dwt_tonnetz", model="resnet56") == {
        "accuracy": 91.36, "accuracy_drop": 26.08, "bounded_fooling_rate": 55.38, "eps_ratio": 2.501}
    assert published_cell(dataset="synth", representation="stft", model="resnet56") is None


def test_attack_files_with_different_bounds_are_refused(tmp_path, rng):
    files = make_inputs()
    files["attack_retrained_bounded.json"]["bound"] = 0.5
    write_tree(tmp_path, files, rng=rng)
    with pytest.raises(DataError, match=r"attack_retrained_bounded.json: bound 0.5 differs from .*attack_original.json: 3.0"):
        read_attack_suite(metrics_dir=tmp_path / "metrics")


def test_the_report_says_whether_the_adversarials_survive_as_sound(tmp_path, rng):
    write_tree(tmp_path, make_inputs(), rng=rng)
    path = tmp_path / "metrics" / "roundtrip.json"
    path.write_text(json.dumps({"supported": 1, "cw": {"n": 4, "fooling_rate": 0.25, "snr_db_median": 18.04,
                                                       "snr_db_mean": 17.0},
                                "deepfool": {"n": 0, "fooling_rate": 0.0}, "mean": {"fooling_rate": 0.25}}))
    build_report(params=params(), metrics_dir=tmp_path / "metrics", build_dir=tmp_path / "build",
                 reports_dir=tmp_path / "reports", round_trip=path)
    report = (tmp_path / "reports" / "report.md").read_text()
    section = report[report.index("## Beyond the study: do the adversarials survive as sound?"):]
    assert "| cw       | 4            | 25.0" in section and "| 18.0 " in section  # computed, formatted here
    assert "| deepfool | 0            | –" in section and "| mean     |" in section
    path.write_text(json.dumps({"supported": 0}))
    build_report(params=params(), metrics_dir=tmp_path / "metrics", build_dir=tmp_path / "build",
                 reports_dir=tmp_path / "reports", round_trip=path)
    assert "has no inverse here" in (tmp_path / "reports" / "report.md").read_text()
    run_build(tmp_path)  # without it (a library caller), no section
    assert "Beyond the study" not in (tmp_path / "reports" / "report.md").read_text()


def _transfer_json(attacks: list[str]) -> dict:
    entry = {"n": 20, "successes": 5, "rate": 0.25, "ci_low": 0.1, "ci_high": 0.5, "target_correct": 20,
             "source_succeeded": 20, "fooled": 5}
    matrix = {s: {t: {"measure": "white_box" if s == t else "transfer", **entry} for t in ("original", "retrained")}
              for s in ("original", "retrained")}
    return {"models": ["original", "retrained"], "n_victims": 20,
            "attacks": {a: {"targeted": False, "matrix": matrix} for a in attacks},
            "masking": {"n": 20, "transfer": {a: 0.25 for a in attacks}, "white_box": {a: 0.25 for a in attacks},
                        "best_transfer": attacks[0], "best_white_box": attacks[0], "gap_points": 0.0, "p": 1.0,
                        "flagged": 0}}


def test_beyond_the_study_transfer_and_pgd_sections(tmp_path, rng):
    """With the transfer stage's metrics and a PGD-retrained model's attack stage (here a copy of the
    FGSM-retrained one's, so both columns must agree), report.md gains both sections and their figures."""
    write_tree(tmp_path, make_inputs(), rng=rng)
    metrics = tmp_path / "metrics"
    for fgsm, pgd in (("retrained", "pgd_retrained"), ("retrained_bounded", "pgd_retrained_bounded")):
        (metrics / f"attack_{pgd}.json").write_text((metrics / f"attack_{fgsm}.json").read_text())
        shutil.copytree(tmp_path / "build" / "attacks" / fgsm, tmp_path / "build" / "attacks" / pgd)
    (metrics / "pgd_retrain.json").write_text((metrics / "fgsm_retrain.json").read_text())
    shutil.copytree(metrics / "curves" / "attack_retrained", metrics / "curves" / "attack_pgd_retrained")
    (metrics / "transfer.json").write_text(json.dumps(_transfer_json(list(ATTACKS))))
    summary = build_report(params=params(), metrics_dir=metrics, build_dir=tmp_path / "build",
                           reports_dir=tmp_path / "reports", transfer=metrics / "transfer.json",
                           pgd_mode="pgd_retrained").metrics
    for a in ATTACKS:
        assert summary[f"pgd_bounded_fooling_rate_{a}"] == summary[f"bounded_fooling_rate_{a}"]
        assert summary[f"pgd_bounded_fooling_rate_{a}_p"] == 1.0
        assert summary[f"transfer_rate_original_to_retrained_{a}"] == 0.25
    assert summary["pgd_accuracy_retrained"] == summary["accuracy_retrained"]
    assert summary["pgd_eps_ratio"] == pytest.approx(summary["eps_ratio"])
    assert summary["transfer_masking_flag"] == 0.0
    report = (tmp_path / "reports" / "report.md").read_text()
    assert "## Beyond the study: do the adversarials transfer between the original and the retrained model?" in report
    assert "## Beyond the study: FGSM or PGD retraining?" in report
    assert "![transfer heat map](transfer.png)" in report and "](retraining_curves.png)" in report
    for png in ("transfer.png", "retraining_curves.png"):
        assert (tmp_path / "reports" / png).read_bytes()[:4] == b"\x89PNG"
    (metrics / "pgd_retrain.json").unlink()
    with pytest.raises(DataError, match="pgd_retrain.json"):
        build_report(params=params(), metrics_dir=metrics, build_dir=tmp_path / "build",
                     reports_dir=tmp_path / "reports", transfer=metrics / "transfer.json", pgd_mode="pgd_retrained")
