"""Markdown rendering: Tables I-III in the study's layout, and the one-configuration report.

Cells are keyed ``(dataset, representation, model)`` and hold ``metrics/summary.json`` numbers
(``accuracy`` and ``bounded_fooling_rate`` as fractions, ``accuracy_drop`` in points, ``eps_ratio``).
Tables show percent, like the study; the best value of each row is bold when the row has two or more.
"""

from __future__ import annotations

from typing import Any, Iterable

from tabulate import tabulate

from advaudio.report import layout
from advaudio.report.findings import Finding
from advaudio.report.inputs import AttackMetrics
from advaudio.report.reference import ReferenceCheck, reference_markdown
from advaudio.report.study_values import PUBLISHED_DATASETS, published_cell
from advaudio.report.summary import Summary

CellKey = tuple[str, str, str]
TABLES: tuple[str, ...] = ("table1", "table2", "table3")
# Cells are formatted here (e.g. "06.89"); tabulate must not re-parse them as numbers.
_TABULATE = {"tablefmt": "github", "disable_numparse": True}


def cell_value(*, table: str, metrics: dict[str, float]) -> float | None:
    """The number a table ranks a cell by (percent for Tables I and II), or ``None`` if absent."""
    key = {"table1": "accuracy", "table2": "bounded_fooling_rate", "table3": "eps_ratio"}[table]
    if key not in metrics or (table == "table1" and "accuracy_drop" not in metrics):
        return None
    return 100.0 * metrics[key] if table in ("table1", "table2") else metrics[key]


def format_cell(*, table: str, metrics: dict[str, float]) -> str:
    """A cell as the study prints it, or the empty cell when its numbers are missing."""
    value = cell_value(table=table, metrics=metrics)
    if value is None:
        return layout.EMPTY_CELL
    if table == "table1":
        text = layout.format_table1(accuracy_percent=value, drop_points=metrics["accuracy_drop"])
    elif table == "table2":
        text = layout.format_table2(fooling_rate_percent=value)
    else:
        text = layout.format_table3(eps_ratio=value)
    key = {"table1": "accuracy", "table2": "bounded_fooling_rate", "table3": "eps_ratio"}[table]
    if f"{key}_ci_low" in metrics and f"{key}_ci_high" in metrics:  # published cells have none
        text += " " + layout.format_interval(metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"],
                                             percent=table != "table3", digits=1 if table != "table3" else 2)
    return text


def layout_rows(
    *,
    table: str,
    cells: dict[CellKey, dict[str, float]],
    datasets: Iterable[str],
    representations: Iterable[str] = layout.REPRESENTATIONS,
    models: Iterable[str] = layout.MODELS,
    bold: bool = True,
) -> list[list[str]]:
    """Rows of one table in the study's layout: ``[dataset, representation, cell per model]``.

    The dataset label is printed on the first row of its block only, as in the study.
    """
    models, representations = list(models), list(representations)
    rows = []
    for dataset in datasets:
        for i, representation in enumerate(representations):
            metrics = [cells.get((dataset, representation, m)) for m in models]
            values = [cell_value(table=table, metrics=c) if c else None for c in metrics]
            texts = [format_cell(table=table, metrics=c) if c else layout.EMPTY_CELL for c in metrics]
            present = [v for v in values if v is not None]
            if bold and len(present) >= 2:
                best = max(present) if layout.BEST_IS_HIGH[table] else min(present)
                texts = [f"**{t}**" if v == best else t for t, v in zip(texts, values)]
            label = layout.dataset_label(dataset) if i == 0 else ""
            rows.append([label, layout.representation_label(representation), *texts])
    return rows


def published_cells(*, datasets: Iterable[str]) -> dict[CellKey, dict[str, float]]:
    """The study's values as cells in summary units (fractions for accuracy and fooling rate)."""
    cells = {}
    for dataset in datasets:
        for representation in layout.REPRESENTATIONS:
            for model in layout.MODELS:
                pub = published_cell(dataset=dataset, representation=representation, model=model)
                if pub is not None:
                    cells[(dataset, representation, model)] = {
                        "accuracy": pub["accuracy"] / 100.0,
                        "accuracy_drop": pub["accuracy_drop"],
                        "bounded_fooling_rate": pub["bounded_fooling_rate"] / 100.0,
                        "eps_ratio": pub["eps_ratio"],
                    }
    return cells


def render_layout_tables(
    *,
    cells: dict[CellKey, dict[str, float]],
    datasets: Iterable[str],
    representations: Iterable[str] = layout.REPRESENTATIONS,
    heading_level: int = 2,
) -> str:
    """Tables I-III in the study's layout as markdown, each followed by the study's published values
    for the datasets the study covers (ESC-50, UrbanSound8K)."""
    datasets, representations = list(datasets), list(representations)
    header = ["Dataset", "Representations", *(layout.model_label(m) for m in layout.MODELS)]
    published_sets = [d for d in datasets if d in PUBLISHED_DATASETS]
    published = published_cells(datasets=published_sets)
    hashes = "#" * heading_level
    parts = []
    for table in TABLES:
        rows = layout_rows(table=table, cells=cells, datasets=datasets, representations=representations)
        parts.append(f"{hashes} {layout.TABLE_TITLES[table]}\n\n{tabulate(rows, header, **_TABULATE)}\n")
        if published_sets:
            pub_rows = layout_rows(
                table=table, cells=published, datasets=published_sets, representations=representations
            )
            parts.append(
                f"Study (published, arXiv:2008.11618):\n\n{tabulate(pub_rows, header, **_TABULATE)}\n"
            )
    return "\n".join(parts)


def render_report(
    *,
    dataset: str,
    representation: str,
    model: str,
    summary: Summary,
    suite: dict[str, AttackMetrics],
    findings: list[Finding],
    bound: float,
    target_fooling_rate: float,
    round_trip: dict[str, Any] | None = None,
    reference: list[ReferenceCheck] | None = None,
    beyond: list[str] = (),
) -> str:
    """The ``reports/report.md`` text for one configuration; with ``round_trip`` (``metrics/roundtrip.json``) a
    section on whether the adversarials survive as sound, with ``reference`` (:mod:`advaudio.report.reference`)
    one on the reference attack; ``beyond`` are further sections, already rendered (transfer, FGSM vs PGD)."""
    cell = {(dataset, representation, model): summary.metrics}
    title = (
        f"# advaudio report: {layout.dataset_label(dataset)} / {layout.representation_label(representation)}"
        f" / {layout.model_label(model)}\n"
    )
    sections = [
        title,
        "## Findings of the study, checked on these numbers\n\n"
        + "\n".join(f"- **{f.claim}**: {f.verdict}. {f.evidence}" for f in findings)
        + "\n",
        render_layout_tables(cells=cell, datasets=[dataset], representations=[representation], heading_level=2),
        _attack_detail(summary=summary, suite=suite, bound=bound, target_fooling_rate=target_fooling_rate),
        *([] if round_trip is None else [_round_trip(round_trip, attacks=summary.attacks,
                                                     representation=representation)]),
        *(["\n".join(reference_markdown(reference, bound=bound))] if reference else []),
        *beyond,
        _sanity(summary=summary, suite=suite),
        _definitions(bound=bound, target_fooling_rate=target_fooling_rate),
    ]
    return "\n".join(sections)


def _round_trip(metrics: dict[str, Any], *, attacks: list[str], representation: str) -> str:
    """The "Beyond the study" section from ``metrics/roundtrip.json`` (docs/PROTOCOL.md "Audio round trip")."""
    head = ("## Beyond the study: do the adversarials survive as sound?\n\n"
            "Each victim an attack fooled in `attack@original` is turned into a waveform, analysed and classified "
            "again (docs/PROTOCOL.md \"Audio round trip\"); the first victim's clips are in `reports/roundtrip/`.\n")
    if not metrics.get("supported"):
        return head + f"\nThe round trip covers the STFT representations; `{representation}` has no inverse here.\n"
    rows = []
    for a in attacks:
        entry = metrics.get(a, {})
        n = int(entry.get("n", 0))
        rate = f"{100 * entry['fooling_rate']:.1f}" if n else "–"
        snr = f"{entry['snr_db_median']:.1f}" if n else "–"
        rows.append([a, str(n), rate, snr])
    if "mean" in metrics:
        rows.append(["mean", "", f"{100 * metrics['mean']['fooling_rate']:.1f}", ""])
    table = tabulate(rows, ["attack", "fooled (n)", "still fooled after the round trip (%)", "median SNR (dB)"],
                     **_TABULATE)
    return head + "\n" + table + "\n"


def _cost(entry: dict[str, float]) -> float | None:
    return entry.get("queries", entry.get("gradient_calls"))


def _level(entry: dict[str, float]) -> str:
    return f"{int(entry['level'])}/{int(entry['n_levels'])}"


def _attack_detail(
    *, summary: Summary, suite: dict[str, AttackMetrics], bound: float, target_fooling_rate: float
) -> str:
    clean, unbounded = suite["original"].attacks, suite["retrained"].attacks
    original_bounded, bounded = suite["original_bounded"].attacks, suite["retrained_bounded"].attacks
    fmt, m = layout.format_number, summary.metrics

    def rate(key: str) -> str:
        if key not in m:
            return layout.EMPTY_CELL
        return f"{fmt(m[key], percent=True)} {layout.format_interval(m[key + '_ci_low'], m[key + '_ci_high'], percent=True, digits=1)}"

    fr_rows, eps_rows, cost_rows = [], [], []
    for a in summary.attacks:
        o, ob, b, r = clean[a], original_bounded[a], bounded[a], unbounded[a]
        fr_rows.append([a, fmt(o["fooling_rate"], percent=True), fmt(r["fooling_rate"], percent=True),
                        rate(f"bounded_fooling_rate_original_{a}"), rate(f"bounded_fooling_rate_{a}"),
                        layout.format_p(m.get(f"bounded_fooling_rate_{a}_p")),
                        fmt(ob.get("auc"), percent=True), fmt(b.get("auc"), percent=True)])
        used = "yes" if a in summary.eps.per_attack else f"no ({summary.eps.excluded.get(a, 'not needed')})"
        n_pairs = m.get(f"eps_ratio_{a}_n_pairs")
        eps_rows.append([a, fmt(o.get("mean_l2")), fmt(r.get("mean_l2")), fmt(summary.eps.unpaired.get(a)),
                         fmt(summary.eps.all_ratios.get(a)), fmt(n_pairs, digits=0),
                         layout.format_p(m.get(f"eps_ratio_{a}_p")), used,
                         fmt(o.get("mean_db"), digits=1), fmt(r.get("mean_db"), digits=1)])
        cost_rows.append([a, _level(o), _level(r), fmt(_cost(o), digits=0), fmt(_cost(r), digits=0),
                          fmt(o.get("seconds"), digits=1), fmt(r.get("seconds"), digits=1)])
    fr_head = ["attack", "FR original (search) %", "FR retrained (search) %",
               f"FR original, ‖δ‖₂ ≤ {bound:.3g} % [95 % CI]", f"FR retrained, ‖δ‖₂ ≤ {bound:.3g} % [95 % CI]",
               "p (McNemar)", "AUC original (bounded) %", "AUC retrained (bounded) %"]
    eps_head = ["attack", "eps_o (mean L2, own successes)", "eps_a (mean L2, own successes)", "eps_r unpaired",
                "eps_r paired", "pairs", "p (Wilcoxon)", "in mean eps_r", "dB original", "dB retrained"]
    cost_head = ["attack", "level original", "level retrained", "grad calls/queries original",
                 "grad calls/queries retrained", "s original", "s retrained"]
    return (
        "## Per-attack detail\n\n"
        f"Victims: {suite['original'].n_victims}. FR (search): fooling rate at the budget level reached "
        f"(target {100 * target_fooling_rate:.0f} %). Search and eps: `attack@original` (original) and "
        "`attack@retrained` (retrained); within the bound: `attack@original_bounded` and `attack@retrained_bounded`, the same "
        "bounded attack on both models.\n\n"
        f"### Fooling rates\n\n{tabulate(fr_rows, fr_head, **_TABULATE)}\n\n"
        f"### Perturbation size\n\n{tabulate(eps_rows, eps_head, **_TABULATE)}\n\n"
        f"### Cost\n\n{tabulate(cost_rows, cost_head, **_TABULATE)}\n"
    )


def _sanity(*, summary: Summary, suite: dict[str, AttackMetrics]) -> str:
    names = sorted({k for m in suite.values() for k in m.sanity})
    rows = []
    for name in names:
        flags = [m.sanity.get(name) for m in suite.values()]
        rows.append([name, *(layout.EMPTY_CELL if f is None else ("pass" if f == 1 else "**FAIL**") for f in flags)])
    same_victims = len({m.n_victims for m in suite.values()}) == 1
    rows.append(["same number of victims in all attack stages",
                 *(["pass" if same_victims else "**FAIL**"] * len(suite))])
    if summary.retrain_clean_accuracy is not None:
        ok = abs(summary.retrain_clean_accuracy - summary.metrics["accuracy"]) <= 1e-6
        rows.append(["fgsm_retrain's clean accuracy equals train's", "pass" if ok else "**FAIL**",
                     *([layout.EMPTY_CELL] * (len(suite) - 1))])
    failed = sum(r.count("**FAIL**") for r in rows)
    head = ["check", *suite]
    verdict = "All checks pass." if failed == 0 else f"**{failed} check(s) failed**; read the numbers above with care."
    return f"## Sanity checks\n\n{verdict}\n\n{tabulate(rows, head, **_TABULATE)}\n"


def _definitions(*, bound: float, target_fooling_rate: float) -> str:
    return (
        "## How to read these tables\n\n"
        "- Table I: clean test accuracy (%) of the original model; in parentheses the drop in percentage "
        "points after FGSM adversarial training (original - retrained).\n"
        f"- Table II: fooling rate (%) of the retrained model within ||delta||_2 <= {bound:.3g}, averaged over "
        "the attacks. This is FR at the bound, not the AUC of the robustness curve (the study labels its "
        "Table II 'average AUC%'); the AUC is listed per attack above. The bound is the study's "
        "||delta||_2 <= `attack.bound` at this input size (`attack.bound_scaling: study_rms` keeps its "
        "per-element RMS; `none` uses it as it is).\n"
        f"- Table III: eps_r = eps_a / eps_o (Eq. 15), eps = mean ||delta||_2 at the budget that reached "
        f"FR >= {target_fooling_rate:g}, over the paired victims (both models classify them correctly and both "
        "attacks fool them; 'pairs' above); the mean of the per-attack ratios over the attacks that reached the "
        "target on both models. 'eps_r unpaired' is the study's figure (each model's own successes).\n"
        "- Brackets: 95 % intervals (Wilson for rates and accuracies, percentile bootstrap over victims for the "
        "mean over attacks and eps_r). p: paired tests on the same clips or victims (McNemar for success, "
        "Wilcoxon signed-rank for perturbation sizes); * marks p < 0.05. docs/PROTOCOL.md \"Uncertainty\".\n"
        "- Bold marks the best value of a row when the row has two or more values (highest accuracy, lowest "
        "fooling rate, highest eps_r), as in the study.\n"
    )
