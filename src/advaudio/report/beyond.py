"""The grid's "Beyond the study" section: per run (cell and seed), FGSM against PGD retraining and the
transfer-based gradient-masking check, from each run's summary.json (keys of :mod:`advaudio.report.pgd` and
:mod:`advaudio.report.cell_transfer`). Runs of revisions without those stages have no such keys and are left out."""

from __future__ import annotations

from typing import Any

KEYS = ("accuracy_retrained", "pgd_accuracy_retrained", "pgd_accuracy_minus_fgsm_p", "bounded_fooling_rate",
        "pgd_bounded_fooling_rate", "pgd_bounded_fooling_rate_p", "transfer_masking_flag", "transfer_masking_gap",
        "transfer_masking_p")


def beyond_runs(seeds: dict[tuple[str, str, str], dict[int, dict[str, float]]]) -> list[dict[str, Any]]:
    """One entry per run with every key of :data:`KEYS`: ``dataset``, ``representation``, ``model``, ``seed`` and
    the numbers (fractions for rates, points for the gap, 1/0 for the flag)."""
    out: list[dict[str, Any]] = []
    for (d, r, m), per_seed in seeds.items():
        for seed, metrics in per_seed.items():
            if all(k in metrics for k in KEYS):
                out.append({"dataset": d, "representation": r, "model": m, "seed": seed,
                            **{k: metrics[k] for k in KEYS}})
    return out


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.2g}"


def beyond_markdown(runs: list[dict[str, Any]]) -> list[str]:
    """The section (empty without such runs): one row per run."""
    if not runs:
        return []
    lines = [
        "\n## Beyond the study: FGSM or PGD retraining, and gradient masking\n",
        "Per run: the FGSM- and the PGD-retrained model's clean accuracy and Table II fooling rate within the "
        "bound (mean of the six; p: McNemar over test clips, Wilcoxon over victims), and whether the original "
        "model's transferred adversarials fool significantly more of the FGSM-retrained model's victims than "
        "every white-box attack on it (docs/PROTOCOL.md \"Adversarial retraining: FGSM or PGD\", \"Transfer "
        "within the cell\").\n",
        "| run | accuracy FGSM / PGD (%) | p | Table II FGSM / PGD (%) | p | transfer − white box (points), p | "
        "masking flagged |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in runs:
        lines.append(
            f"| {e['dataset']} / {e['representation']} / {e['model']}, seed {e['seed']} | "
            f"{100 * e['accuracy_retrained']:.1f} / {100 * e['pgd_accuracy_retrained']:.1f} | "
            f"{_p(e['pgd_accuracy_minus_fgsm_p'])} | {100 * e['bounded_fooling_rate']:.1f} / "
            f"{100 * e['pgd_bounded_fooling_rate']:.1f} | {_p(e['pgd_bounded_fooling_rate_p'])} | "
            f"{e['transfer_masking_gap']:+.1f}, {_p(e['transfer_masking_p'])} | "
            f"{'**yes**' if e['transfer_masking_flag'] == 1.0 else 'no'} |")
    return lines + [""]
