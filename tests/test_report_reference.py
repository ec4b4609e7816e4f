"""The reference attack check: the best APGD against the best of the six, within the bound, per model."""

from pathlib import Path

import numpy as np
import pytest

from advaudio.report.paired import VictimResults
from advaudio.report.reference import GAP_POINTS, reference_checks, reference_markdown, reference_metrics


def _results(hits: dict[str, list[bool]], *, l2: float = 0.5) -> VictimResults:
    n = len(next(iter(hits.values())))
    return VictimResults(path=Path("results.npz"), l2={a: np.full(n, l2) for a in hits},
                         success={a: np.array(h, bool) for a, h in hits.items()}, model_correct=np.ones(n, bool),
                         test_predictions=np.zeros(3, int), test_labels=np.zeros(3, int))


def test_a_much_stronger_reference_attack_flags_the_model_and_a_close_one_does_not():
    n = 40
    weak = [i < 8 for i in range(n)]          # 20 %
    strong = [i < 12 for i in range(n)]       # 30 %: the best of the six
    apgd = [i < 24 for i in range(n)]         # 60 %: 12 more victims, none fewer: McNemar p = 2 * 0.5**12
    close = [i < 14 for i in range(n)]        # 35 %
    results = {"original_bounded": _results({"bim_a": weak, "cw": strong, "apgd_ce": apgd, "apgd_dlr": close}),
               "retrained_bounded": _results({"bim_a": weak, "cw": strong, "apgd_ce": close, "apgd_dlr": weak})}
    original, retrained = reference_checks(results=results, study=["bim_a", "cw"], reference=["apgd_ce", "apgd_dlr"],
                                           bound=1.0)
    assert (original.best_study, original.best_reference) == ("cw", "apgd_ce")
    assert original.gap_points == pytest.approx(30.0) and original.p == pytest.approx(2 * 0.5**12)
    assert original.flagged and not retrained.flagged
    assert retrained.best_reference == "apgd_ce" and retrained.gap_points == pytest.approx(5.0) and 5.0 < GAP_POINTS
    metrics = reference_metrics([original, retrained])
    assert metrics["reference_flag_original"] == 1.0 and metrics["reference_flag_retrained"] == 0.0
    assert metrics["reference_fooling_rate_original_apgd_dlr"] == pytest.approx(0.35)
    assert metrics["reference_gap_retrained"] == pytest.approx(5.0)
    text = "\n".join(reference_markdown([original, retrained], bound=1.0))
    assert "| original | 40 | cw 30.0 | apgd_ce 60.0 | +30.0 | < 0.001 | **yes** |" in text


def test_successes_beyond_the_bound_do_not_count_and_no_reference_means_no_check():
    hits = {"cw": [True] * 10, "apgd_ce": [True] * 10}
    results = {mode: _results(hits, l2=2.0) for mode in ("original_bounded", "retrained_bounded")}
    checks = reference_checks(results=results, study=["cw"], reference=["apgd_ce"], bound=1.0)
    assert [c.best_reference_rate for c in checks] == [0.0, 0.0] and not any(c.flagged for c in checks)
    assert reference_checks(results=results, study=["cw"], reference=[], bound=1.0) == []
    assert reference_markdown([], bound=1.0) == [] and reference_metrics([]) == {}


def test_the_grid_lists_the_flagged_runs_and_says_so_when_none_is():
    from advaudio.report.reference import flagged_markdown, flagged_runs

    flagged = {"reference_flag_original": 0.0, "reference_gap_original": 2.5, "reference_gap_original_p": 0.6,
               "reference_flag_retrained": 1.0, "reference_gap_retrained": 27.5, "reference_gap_retrained_p": 0.001}
    seeds = {("synth", "stft", "vgg16"): {0: flagged, 1: {**flagged, "reference_flag_retrained": 0.0}},
             ("synth", "stft", "resnet56"): {0: {"accuracy": 0.8}}}  # a run without the reference attack
    flags = flagged_runs(seeds)
    assert flags == [{"dataset": "synth", "representation": "stft", "model": "vgg16", "seed": 0,
                      "flagged": "retrained", "gap_points": 27.5, "p": 0.001}]
    text = "\n".join(flagged_markdown(flags, any_reference=True))
    assert "- synth / stft / vgg16, seed 0: the retrained model, +27.5 points (p = 0.001)" in text
    assert "No run" in "\n".join(flagged_markdown([], any_reference=True))
    assert flagged_markdown([], any_reference=False) == []
