"""The grid collector: from experiment records (``dvc exp show --json``) to Tables I-III.

Pure functions, no DVC calls, so they are tested on recorded output. The runner is
:mod:`advaudio.report.grid`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from advaudio.errors import DataError
from advaudio.report import layout
from advaudio.report.seeds import findings_markdown, findings_over_seeds, mean_metrics
from advaudio.report.beyond import beyond_markdown, beyond_runs
from advaudio.report.reference import flagged_markdown, flagged_runs
from advaudio.report.study_values import PUBLISHED_DATASETS
from advaudio.report.tables import CellKey, TABLES, cell_value, published_cells, render_layout_tables

SUMMARY_FILE = "metrics/summary.json"
PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class ExperimentRecord:
    """One experiment: its name, state (``success``, ``failed``, ``queued``, ``running``), params and summary."""

    name: str
    rev: str
    baseline: str  # the commit the experiment was run from
    state: str
    timestamp: str
    params: dict[str, Any]
    metrics: dict[str, float]

    @property
    def seed(self) -> int:
        """The experiment's seed (params.yaml's ``seed``; 0 when absent)."""
        value = self.params.get("seed", 0)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    @property
    def cell(self) -> CellKey:
        """``(dataset, representation, model)`` of this experiment."""
        return (str(self.params.get("dataset")), str(self.params.get("representation")), str(self.params.get("model")))


@dataclass(frozen=True)
class GridTables:
    """The collected grid: one summary per cell, and the cells that failed or are missing."""

    datasets: list[str]
    representations: list[str]
    models: list[str]
    cells: dict[CellKey, dict[str, float]]
    experiments: dict[CellKey, str]
    baselines: dict[CellKey, str] = field(default_factory=dict)  # cell -> its experiment's baseline commit
    failed: dict[CellKey, list[str]] = field(default_factory=dict)
    missing: list[CellKey] = field(default_factory=list)
    seeds: dict[CellKey, dict[int, dict[str, float]]] = field(default_factory=dict)  # cell -> seed -> summary
    records: dict[CellKey, dict[int, ExperimentRecord]] = field(default_factory=dict)  # cell -> seed -> experiment


def records_from_exp_show(data: Any, *, source: str = "dvc exp show --json") -> list[ExperimentRecord]:
    """Parse ``dvc exp show --json`` (DVC 3) into experiment records.

    The workspace and baseline commits are skipped; only experiments are returned. A failed experiment's
    metrics are dropped, because DVC shows the baseline's metrics for it.

    Raises
    ------
    DataError
        If ``data`` is not the list of commits that DVC 3 prints.
    """
    if not isinstance(data, list):
        raise DataError(f"{source}: expected a JSON list of commits, got {type(data).__name__}")
    records = []
    for commit in data:
        if not isinstance(commit, dict) or "rev" not in commit:
            raise DataError(f"{source}: expected commit objects with 'rev', got {commit!r:.80}")
        for group in commit.get("experiments") or []:
            executor = group.get("executor") or {}
            for rev in group.get("revs") or []:
                records.append(_record(rev, baseline=str(commit["rev"]), group_name=group.get("name"),
                                       executor_state=executor.get("state")))
    return records


def _record(
    rev: dict[str, Any], *, baseline: str, group_name: str | None, executor_state: str | None
) -> ExperimentRecord:
    data = rev.get("data") or {}
    failed = rev.get("error") is not None or executor_state == "failed"
    state = "failed" if failed else (executor_state or "success")
    params = ((data.get("params") or {}).get(PARAMS_FILE) or {}).get("data") or {}
    metrics = ((data.get("metrics") or {}).get(SUMMARY_FILE) or {}).get("data") or {}
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return ExperimentRecord(
        name=str(rev.get("name") or group_name or rev.get("rev", "")[:7]),
        rev=str(rev.get("rev", "")),
        baseline=baseline,
        state=state,
        timestamp=str(data.get("timestamp") or ""),
        params=params,
        metrics={} if failed else numbers,
    )


def collect_grid(
    *,
    records: Iterable[ExperimentRecord],
    datasets: Iterable[str],
    representations: Iterable[str],
    models: Iterable[str],
) -> GridTables:
    """Pick each requested cell's newest successful experiment with a summary.

    Records outside the requested grid are ignored. A cell with only failed experiments is listed in
    ``failed``; a cell with no experiment (or a successful one without ``metrics/summary.json``) in
    ``missing``.
    """
    datasets, representations, models = list(datasets), list(representations), list(models)
    wanted = {(d, r, m) for d in datasets for r in representations for m in models}
    best: dict[CellKey, dict[int, ExperimentRecord]] = {}
    failed: dict[CellKey, list[str]] = {}
    for rec in records:
        if rec.cell not in wanted:
            continue
        if rec.state != "success" or not rec.metrics:
            if rec.state == "failed":
                failed.setdefault(rec.cell, []).append(rec.name)
            continue
        seeds = best.setdefault(rec.cell, {})
        if rec.seed not in seeds or rec.timestamp > seeds[rec.seed].timestamp:
            seeds[rec.seed] = rec
    order = [(d, r, m) for d in datasets for r in representations for m in models]
    per_seed = {k: {s: best[k][s].metrics for s in sorted(best[k])} for k in order if k in best}
    return GridTables(
        datasets=datasets,
        representations=representations,
        models=models,
        cells={k: mean_metrics(v) for k, v in per_seed.items()},
        experiments={k: ", ".join(best[k][s].name for s in sorted(best[k])) for k in per_seed},
        baselines={k: best[k][min(best[k])].baseline for k in per_seed},
        failed={k: v for k, v in failed.items() if k not in best},
        missing=[k for k in order if k not in best and k not in failed],
        seeds=per_seed,
        records={k: {s: best[k][s] for s in sorted(best[k])} for k in per_seed},
    )


def grid_markdown(grid: GridTables) -> str:
    """``reports/grid/tables.md``: Tables I-III in the study's layout, the study's values beside them,
    and which experiment fed each cell."""
    parts = [
        "# advaudio grid: Tables I-III\n",
        # The study's full layout (every representation row, every model column); cells not run show "–".
        render_layout_tables(cells=grid.cells, datasets=grid.datasets),
        "## Experiments\n",
    ]
    for (d, r, m), name in grid.experiments.items():
        baseline = grid.baselines.get((d, r, m))
        parts.append(f"- {d} / {r} / {m}: `{name}`" + (f" (baseline commit `{baseline[:7]}`)" if baseline else ""))
    for (d, r, m), names in grid.failed.items():
        listed = ", ".join(f"`{n}`" for n in names)
        parts.append(f"- {d} / {r} / {m}: **failed** ({listed})")
    for d, r, m in grid.missing:
        parts.append(f"- {d} / {r} / {m}: **missing** (no finished experiment with {SUMMARY_FILE})")
    several = {k: v for k, v in grid.seeds.items() if len(v) > 1}
    if several:
        parts.append("\n## Findings over seeds\n")
        parts.append("Tables I-III above show the mean over seeds. Each finding: mean ± sd over seeds, how many "
                     "seeds agree on its direction, and a t-test of the per-seed differences (docs/PROTOCOL.md "
                     "\"Findings over seeds\").\n")
        for (d, r, m), summaries in several.items():
            parts.append(f"**{d} / {r} / {m}** (seeds {', '.join(str(s) for s in summaries)})\n")
            parts.extend(findings_markdown(findings_over_seeds(summaries)))
            parts.append("")
    parts.extend(flagged_markdown(flagged_runs(grid.seeds), any_reference=_any_reference(grid)))
    parts.extend(beyond_markdown(beyond_runs(grid.seeds)))
    return "\n".join(parts) + "\n"


def _any_reference(grid: GridTables) -> bool:
    return any(k.startswith("reference_flag_") for per_seed in grid.seeds.values() for m in per_seed.values()
               for k in m)


def grid_json(grid: GridTables) -> dict[str, Any]:
    """``reports/grid/tables.json``: the same tables as numbers.

    ``table1`` cells hold ``accuracy`` (fraction) and ``accuracy_drop`` (points); ``table2`` the bounded
    fooling rate (fraction); ``table3`` eps_r. Shape: ``{table: {dataset: {representation: {model: ...}}}}``.
    ``study`` holds the published values in the same units for ESC-50 and UrbanSound8K.
    """
    published = published_cells(datasets=[d for d in grid.datasets if d in PUBLISHED_DATASETS])
    out: dict[str, Any] = {
        "columns": grid.models,
        "column_labels": [layout.model_label(m) for m in grid.models],
        "datasets": grid.datasets,
        "representations": grid.representations,
    }
    out.update(_nested_tables(grid.cells))
    if published:
        out["study"] = _nested_tables(
            {k: v for k, v in published.items() if k[1] in grid.representations and k[2] in grid.models}
        )
    out["experiments"] = [
        {"dataset": d, "representation": r, "model": m, "experiment": name,
         "baseline": grid.baselines.get((d, r, m))}
        for (d, r, m), name in grid.experiments.items()
    ]
    out["failed"] = [
        {"dataset": d, "representation": r, "model": m, "experiments": names}
        for (d, r, m), names in grid.failed.items()
    ]
    out["missing"] = [{"dataset": d, "representation": r, "model": m} for d, r, m in grid.missing]
    out["seeds"] = [
        {"dataset": d, "representation": r, "model": m, "seeds": sorted(summaries),
         "findings": {k: f.to_json() for k, f in findings_over_seeds(summaries).items()}}
        for (d, r, m), summaries in grid.seeds.items()
    ]
    if _any_reference(grid):
        out["reference_flags"] = flagged_runs(grid.seeds)
    beyond = beyond_runs(grid.seeds)
    if beyond:
        out["beyond"] = beyond
    return out


def _nested_tables(cells: dict[CellKey, dict[str, float]]) -> dict[str, Any]:
    tables: dict[str, Any] = {t: {} for t in TABLES}
    for (d, r, m), metrics in cells.items():
        for t in TABLES:
            if cell_value(table=t, metrics=metrics) is None:
                continue
            if t == "table1":
                value: Any = {"accuracy": metrics["accuracy"], "accuracy_drop": metrics["accuracy_drop"]}
            else:
                value = metrics["bounded_fooling_rate" if t == "table2" else "eps_ratio"]
            tables[t].setdefault(d, {}).setdefault(r, {})[m] = value
    return tables
