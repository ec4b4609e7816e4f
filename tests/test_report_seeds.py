"""Findings over seeds: known answers for the mean, sd, agreement and the t-test of per-seed directions, and the
grid collector's seed dimension."""

from __future__ import annotations

import math

import pytest

from advaudio.report.collect import ExperimentRecord, collect_grid, grid_json, grid_markdown
from advaudio.report.seeds import direction_test, findings_over_seeds, mean_metrics


def _summary(*, acc=0.8, drop=5.0, fr_o=0.5, fr_r=0.3, eps=1.5, n_classes=10.0):
    return {"accuracy": acc, "accuracy_drop": drop, "bounded_fooling_rate_original": fr_o,
            "bounded_fooling_rate": fr_r, "eps_ratio": eps, "n_classes": n_classes,
            "accuracy_retrained": acc - drop / 100}


def test_t_test_of_per_seed_drops_has_the_closed_form_answer():
    # d = [4, 6, 5, 7, 3]: mean 5, sd sqrt(2.5), t = 5 / (sqrt(2.5) / sqrt(5)) = sqrt(50) = 7.0711, df 4:
    # two-sided p = 0.0021106 (t-distribution tables)
    per_seed = {s: _summary(drop=d) for s, d in enumerate([4.0, 6.0, 5.0, 7.0, 3.0])}
    drop = findings_over_seeds(per_seed)["accuracy_drop"]
    assert drop.mean == pytest.approx(5.0) and drop.sd == pytest.approx(math.sqrt(2.5))
    assert drop.p_value == pytest.approx(0.0021106, rel=1e-4)
    assert drop.agree == 5 and drop.n_seeds == 5 and drop.significant
    assert drop.values == {0: 4.0, 1: 6.0, 2: 5.0, 3: 7.0, 4: 3.0}


def test_symmetric_directions_give_p_one_and_half_the_seeds_agreeing():
    assert direction_test([1.0, -1.0, 1.0, -1.0]) == pytest.approx(1.0)
    per_seed = {0: _summary(eps=2.0), 1: _summary(eps=0.5)}  # log eps_r = +-log 2
    eps = findings_over_seeds(per_seed)["eps_ratio"]
    assert eps.p_value == pytest.approx(1.0) and eps.agree == 1 and not eps.significant
    assert eps.mean == pytest.approx(1.25)  # the reported value is eps_r itself, not its log


def test_bounded_fooling_rate_and_accuracy_use_their_reference_points():
    per_seed = {0: _summary(fr_o=0.5, fr_r=0.3, acc=0.05), 1: _summary(fr_o=0.4, fr_r=0.45, acc=0.08),
                2: _summary(fr_o=0.6, fr_r=0.2, acc=0.2)}
    found = findings_over_seeds(per_seed)
    assert found["bounded_fooling_rate"].agree == 2  # original - retrained: 0.2, -0.05, 0.4
    assert found["bounded_fooling_rate"].mean == pytest.approx((0.3 + 0.45 + 0.2) / 3)
    assert found["accuracy"].agree == 1  # chance 0.1: 0.05 and 0.08 are below it


def test_one_seed_or_no_spread_gives_no_p_value_and_a_missing_key_no_finding():
    one = findings_over_seeds({3: _summary()})
    assert one["accuracy_drop"].sd is None and one["accuracy_drop"].p_value is None
    same = findings_over_seeds({0: _summary(), 1: _summary()})
    assert same["accuracy_drop"].sd == 0.0 and same["accuracy_drop"].p_value is None
    partial = {0: _summary(), 1: {k: v for k, v in _summary().items() if k != "eps_ratio"}}
    assert "eps_ratio" not in findings_over_seeds(partial)
    assert mean_metrics({0: {"a": 1.0, "b": 2.0}, 1: {"a": 3.0}}) == {"a": 2.0}


def _record(name, seed, **summary):
    return ExperimentRecord(name=name, rev=name, baseline="b" * 40, state="success", timestamp=name,
                            params={"dataset": "synth", "representation": "stft", "model": "resnet56", "seed": seed},
                            metrics=_summary(**summary))


def test_the_grid_collector_averages_seeds_and_reports_the_findings_over_them():
    records = [_record(f"e{s}", s, drop=d) for s, d in enumerate([4.0, 6.0, 5.0, 7.0, 3.0])]
    records.append(_record("e9-older", 0, drop=100.0))  # an older run of seed 0 is replaced by the newer one
    records[-1] = ExperimentRecord(**{**records[-1].__dict__, "timestamp": "0"})
    grid = collect_grid(records=records, datasets=["synth"], representations=["stft"], models=["resnet56"])
    cell = ("synth", "stft", "resnet56")
    assert sorted(grid.seeds[cell]) == [0, 1, 2, 3, 4]
    assert grid.cells[cell]["accuracy_drop"] == pytest.approx(5.0)
    out = grid_json(grid)["seeds"][0]
    assert out["seeds"] == [0, 1, 2, 3, 4]
    assert out["findings"]["accuracy_drop"]["per_seed"]["4"] == 3.0
    assert out["findings"]["accuracy_drop"]["p_value"] == pytest.approx(0.0021106, rel=1e-4)
    text = grid_markdown(grid)
    assert "## Findings over seeds" in text and "5/5 seeds agree; p = 0.00211 (holds at 5 %)" in text
