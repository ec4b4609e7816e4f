"""Transfer matrices of a grid (docs/PROTOCOL.md "Transfer"): each model's stored adversarials on every model of
its (dataset, representation, seed).

The models of one such group share the features, so a source's adversarials are valid inputs of every target.
Per group with two models or more, each experiment gives, for one attack mode (default ``original_bounded``,
the study's Table II threat model), its checkpoint, victims and stored adversarials; every target model
classifies every source's adversarials of every attack (:mod:`advaudio.evaluation.transfer` counts them). The
grid (:mod:`advaudio.report.grid`) writes ``transfer.json``, ``transfer.md`` and a heat map per group.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from advaudio.attacks import ATTACKS
from advaudio.errors import ConfigError, DataError
from advaudio.evaluation.stage_commands import attack_modes, stage_options
from advaudio.evaluation.transfer import Matrix, ModelRun, Rate, TransferCounts, group_matrices, read_run
from advaudio.evaluation.victims import load_victim
from advaudio.io import write_json, write_text
from advaudio.report import layout
from advaudio.report.collect import ExperimentRecord, GridTables
from advaudio.report.exp_files import DvcStore, ExperimentFiles
from advaudio.report.figures import transfer_heatmaps

DEFAULT_MODE = "original_bounded"
JSON_NAME = "transfer.json"
MARKDOWN_NAME = "transfer.md"
RESULTS_NAME = "results.npz"  # what an attack stage writes into its --out folder (stages/attack.py)

GroupKey = tuple[str, str, int]  # (dataset, representation, seed)


@dataclass(frozen=True)
class GroupResult:
    """The matrices of one group, with the experiment behind each model."""

    key: GroupKey
    runs: dict[str, ModelRun]
    matrices: dict[str, Matrix]
    targeted: dict[str, bool]


@dataclass
class TransferReport:
    """The grid's transfer matrices: computed groups, groups with one model, groups that failed (with why)."""

    mode: str
    groups: list[GroupResult] = field(default_factory=list)
    single: list[tuple[GroupKey, str]] = field(default_factory=list)  # (group, its one model)
    failed: list[tuple[GroupKey, str]] = field(default_factory=list)  # (group, the error)


def transfer_groups(grid: GridTables) -> dict[GroupKey, dict[str, ExperimentRecord]]:
    """The collected experiments by (dataset, representation, seed), each group's models in the grid's order."""
    groups: dict[GroupKey, dict[str, ExperimentRecord]] = {}
    for (dataset, representation, model), by_seed in grid.records.items():
        for seed, record in by_seed.items():
            groups.setdefault((dataset, representation, seed), {})[model] = record
    return groups


def choose_mode(requested: str | None, *, repo: Path) -> str | None:
    """The attack mode to compute the matrices for: ``requested``, or :data:`DEFAULT_MODE` when dvc.yaml has
    that stage; None for ``"none"``, or by default when dvc.yaml has no such stage (a pipeline without attacks).

    Raises
    ------
    ConfigError
        If ``requested`` is not a mode of dvc.yaml's ``attack@<mode>`` stages.
    """
    if requested == "none":
        return None
    modes = attack_modes(root=repo)
    if requested is None:
        return DEFAULT_MODE if DEFAULT_MODE in modes else None
    if requested not in modes:
        raise ConfigError(f"unknown transfer mode {requested!r}; choose from {list(modes)} (dvc.yaml's "
                          "attack@<mode> stages) or 'none'")
    return requested


def transfer_report(*, grid: GridTables, store: DvcStore, mode: str, device: torch.device,
                    work_dir: Path) -> TransferReport:
    """The transfer matrices of every group of ``grid`` with two models or more, read from the experiments'
    outputs of stage ``attack@<mode>`` (copied one group at a time into a temporary folder under ``work_dir``).

    A group whose outputs cannot be read is listed in ``failed`` with the error, which names the file.
    """
    options = stage_options(f"attack@{mode}", root=store.repo)
    paths = {"checkpoint": options["checkpoint"], "victims": options["victims"],
             "results": str(PurePosixPath(options["out"]) / RESULTS_NAME),
             "meta": str(PurePosixPath(options["features"]) / "meta.json")}
    report = TransferReport(mode=mode)
    for key, records in transfer_groups(grid).items():
        if len(records) < 2:
            report.single.append((key, next(iter(records))))
            continue
        work_dir.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryDirectory(prefix=".transfer-", dir=work_dir) as tmp:
                report.groups.append(_group(key, records, store=store, paths=paths, device=device, tmp=Path(tmp)))
        except DataError as exc:
            report.failed.append((key, str(exc)))
    return report


def _group(key: GroupKey, records: dict[str, ExperimentRecord], *, store: DvcStore, paths: dict[str, str],
           device: torch.device, tmp: Path) -> GroupResult:
    files = {m: ExperimentFiles(store=store, rev=r.rev, name=r.name) for m, r in records.items()}
    runs = {}
    for m, r in records.items():
        into = tmp / m
        runs[m] = read_run(model=m, experiment=r.name, rev=r.rev,
                           features=files[m].copy(paths["meta"], into=into).parent,
                           victims=files[m].copy(paths["victims"], into=into),
                           results=files[m].copy(paths["results"], into=into))

    def load_model(m: str) -> torch.nn.Module:
        local = files[m].copy(paths["checkpoint"], into=tmp / m)
        try:
            return load_victim(local, device=device, meta=runs[m].meta)
        finally:
            local.unlink()  # the weights are in memory; the copy may be large

    matrices = group_matrices(runs, load_model=load_model, device=device)
    targeted = {a: ATTACKS.get(a).targeted for a in matrices}
    return GroupResult(key=key, runs=runs, matrices=matrices, targeted=targeted)


def shown_rate(counts: TransferCounts, *, diagonal: bool) -> Rate:
    """The rate a matrix entry shows: the white-box fooling rate on the diagonal, else the transfer rate of the
    source's successful adversarials."""
    return counts.fooling_rate() if diagonal else counts.transfer_rate()


def heatmap_name(key: GroupKey) -> str:
    """The heat map's file name of a group: ``transfer-<dataset>-<representation>-s<seed>.png``."""
    dataset, representation, seed = key
    return f"transfer-{dataset}-{representation}-s{seed}.png"


def transfer_json(report: TransferReport) -> dict[str, Any]:
    """``transfer.json``: per group and attack, ``matrix[source][target]`` with ``n``, ``successes``, ``rate``
    (null when n = 0) and the Wilson 95 % interval of the rate shown (``measure``: ``white_box`` on the
    diagonal, ``transfer`` elsewhere), and the counts behind both rates."""
    groups = []
    for g in report.groups:
        dataset, representation, seed = g.key
        attacks = {}
        for a, matrix in g.matrices.items():
            attacks[a] = {"targeted": g.targeted[a], "matrix": {
                s: {t: {"measure": "white_box" if s == t else "transfer", **shown_rate(c, diagonal=s == t).to_json(),
                        "target_correct": c.n, "source_succeeded": c.n_source_success, "fooled": c.fooled}
                    for t, c in row.items()}
                for s, row in matrix.items()}}
        groups.append({
            "dataset": dataset, "representation": representation, "seed": seed, "models": list(g.runs),
            "experiments": {m: {"experiment": r.experiment, "rev": r.rev, "n_victims": len(r.rows)}
                            for m, r in g.runs.items()},
            "heatmap": heatmap_name(g.key), "attacks": attacks,
        })
    return {
        "mode": report.mode,
        "rows": "source model (the adversarials were crafted on it)",
        "columns": "target model (it classifies them)",
        "groups": groups,
        "single_model": [{"dataset": d, "representation": r, "seed": s, "model": m} for (d, r, s), m in report.single],
        "failed": [{"dataset": d, "representation": r, "seed": s, "error": e} for (d, r, s), e in report.failed],
    }


def transfer_markdown(report: TransferReport) -> str:
    """``transfer.md``: per group, one source × target matrix per attack, each entry ``rate [95 % CI] (n)``."""
    parts = [
        "# advaudio grid: transfer matrices\n",
        f"Adversarials of `attack@{report.mode}`. Rows: the source model the adversarials were crafted on; columns: "
        "the target model that classifies them. Off the diagonal: the transfer rate, the share of the source's "
        "successful adversarials that also fool the target (the target class for targeted attacks, any wrong "
        "class for untargeted ones), among the source's victims the target classifies correctly. On the diagonal "
        "(italics): the white-box fooling rate on the model's own victims that it classifies correctly. Each "
        "entry: rate % [Wilson 95 % interval] (n). docs/PROTOCOL.md \"Transfer\".\n",
    ]
    for g in report.groups:
        dataset, representation, seed = g.key
        parts.append(f"## {layout.dataset_label(dataset)} / {layout.representation_label(representation)} / "
                     f"seed {seed}\n")
        parts.append("Experiments: " + ", ".join(
            f"{layout.model_label(m)} `{r.experiment}` ({len(r.rows)} victims)" for m, r in g.runs.items()) + ".\n")
        parts.append(f"![transfer heat map]({heatmap_name(g.key)})\n")
        header = ["source ↓ / target →", *(layout.model_label(m) for m in g.runs)]
        for a, matrix in g.matrices.items():
            rows = [[layout.model_label(s), *(_entry(c, diagonal=s == t) for t, c in row.items())]
                    for s, row in matrix.items()]
            kind = "targeted" if g.targeted[a] else "untargeted"
            parts.append(f"### {a} ({kind})\n\n{tabulate(rows, header, tablefmt='github', disable_numparse=True)}\n")
    for (d, r, s), m in report.single:
        parts.append(f"- {d} / {r} / seed {s}: one model ({m}), no matrix")
    for (d, r, s), error in report.failed:
        parts.append(f"- {d} / {r} / seed {s}: **failed**: {error}")
    return "\n".join(parts) + "\n"


def _entry(counts: TransferCounts, *, diagonal: bool) -> str:
    rate = shown_rate(counts, diagonal=diagonal)
    if rate.rate is None:
        return f"{layout.EMPTY_CELL} (0)"
    text = (f"{layout.format_number(rate.rate, percent=True)} "
            f"{layout.format_interval(rate.ci_low, rate.ci_high, percent=True, digits=1)} ({rate.n})")
    return f"_{text}_" if diagonal else text


def write_transfer(report: TransferReport, *, out_dir: Path) -> None:
    """Write ``transfer.json``, ``transfer.md`` and each group's heat map under ``out_dir``."""
    for g in report.groups:
        dataset, representation, seed = g.key
        labels = [layout.model_label(m) for m in g.runs]
        panels = {}
        for a, matrix in g.matrices.items():
            rates = [[shown_rate(c, diagonal=s == t) for t, c in row.items()] for s, row in matrix.items()]
            panels[f"{a} ({'targeted' if g.targeted[a] else 'untargeted'})"] = (
                np.array([[np.nan if r.rate is None else r.rate for r in row] for row in rates]),
                np.array([[r.n for r in row] for row in rates]))
        transfer_heatmaps(panels=panels, labels=labels, path=out_dir / heatmap_name(g.key),
                          title=f"{layout.dataset_label(dataset)} / {layout.representation_label(representation)} / "
                                f"seed {seed}: attack@{report.mode}; rows: source, columns: target; diagonal: "
                                "white-box fooling rate, elsewhere: transfer rate")
    write_text(out_dir / MARKDOWN_NAME, transfer_markdown(report))
    write_json(out_dir / JSON_NAME, transfer_json(report))
