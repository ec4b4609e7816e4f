"""FGSM against PGD retraining (or any two retrainings) of one cell, side by side: Tables I-III's numbers, the
reference attack's verdict, the gradient-masking sanity check and the robustness curves of the retrained models.

Each run is a git revision of this repository whose committed metrics hold a finished pipeline: the workspace's
commit (``HEAD``) or an experiment (``dvc exp run -n pgd -S fgsm_retrain.method=pgd`` keeps its metrics in its
commit). Everything is read from the revision's committed files (``params.yaml``, ``metrics/summary.json``,
``metrics/attack_<mode>.json`` and the curves in ``metrics/curves``), so nothing has to be checked out::

    python -m advaudio.report.retraining --run HEAD --run pgd --out reports/retraining

The runs must be the same cell (dataset, representation, model, seed) with the same original model: they differ
only in the retraining, so the original's numbers are the same and shown once.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tabulate import tabulate

from advaudio.errors import DataError
from advaudio.io import write_json, write_text
from advaudio.report import figures
from advaudio.report.inputs import parse_curve

CELL_KEYS = ("dataset", "representation", "model", "seed")
SHARED = ("accuracy", "bounded_fooling_rate_original")  # the original model's numbers: equal in every run
MARKDOWN_NAME, JSON_NAME, CURVES_NAME = "retraining.md", "retraining.json", "retraining_curves.png"


@dataclass(frozen=True)
class RetrainRun:
    """One run's retraining, as its revision's committed files give it."""

    rev: str
    label: str  # "fgsm" | "pgd" (the method), with the rev when two runs share a method
    cell: dict[str, Any]
    retrain: dict[str, Any]  # params.yaml's fgsm_retrain block
    summary: dict[str, float]
    sanity_retrained: dict[str, float]
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # attack -> (epsilon, fooling rate) of attack@retrained
    original_curves: dict[str, tuple[np.ndarray, np.ndarray]]
    target_fooling_rate: float


def _show(repo: Path, rev: str, path: str) -> str:
    out = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, text=True, capture_output=True)
    if out.returncode != 0:
        raise DataError(f"{rev}:{path}: not in that revision ({' '.join(out.stderr.split())[:160]}); "
                        "run the pipeline there and commit its metrics (dvc exp run commits them)")
    return out.stdout


def _json(repo: Path, rev: str, path: str) -> dict[str, Any]:
    try:
        data = json.loads(_show(repo, rev, path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{rev}:{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{rev}:{path}: expected a JSON object")
    return data


def _curve(repo: Path, rev: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    return parse_curve(_show(repo, rev, path), source=f"{rev}:{path}")


def resolve(repo: Path, rev: str) -> str:
    """The commit of ``rev``: a git revision, else a DVC experiment's name (``refs/exps/.../<name>``).

    Raises
    ------
    DataError
        When neither names a commit (or an experiment name is ambiguous).
    """
    out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo, text=True,
                         capture_output=True)
    if out.returncode == 0:
        return out.stdout.strip()
    refs = subprocess.run(["git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps"], cwd=repo,
                          text=True, capture_output=True).stdout.splitlines()
    found = [line.split() for line in refs if line.endswith(f"/{rev}")]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, text=True, capture_output=True).stdout.strip()
    of_head = [commit for commit, ref in found if head and ref.startswith(f"refs/exps/{head[:2]}/{head[2:]}/")]
    if len(of_head) == 1:  # as DVC does: an experiment of the current baseline first
        return of_head[0]
    if len(found) != 1:
        if found:
            raise DataError(f"{rev!r} names experiments of several baselines ({', '.join(r for _, r in found)}); "
                            "give the commit of the one to compare")
        raise DataError(f"{rev!r} is neither a git revision nor an experiment in {repo}")
    return found[0][0]


def read_run(repo: Path, rev: str) -> RetrainRun:
    """Read one run's committed params and metrics.

    Raises
    ------
    DataError
        Naming the revision and file when one is missing or malformed.
    """
    commit = resolve(repo, rev)
    params = yaml.safe_load(_show(repo, commit, "params.yaml")) or {}
    retrain = dict(params.get("fgsm_retrain") or {})
    retrain.setdefault("method", "fgsm")  # revisions before fgsm_retrain.method retrained with FGSM
    attack = _json(repo, commit, "metrics/attack_retrained.json")
    attacks = sorted(k for k, v in attack.items() if isinstance(v, dict) and "fooling_rate" in v and k != "mean")
    attacks += sorted(attack.get("reference") or {})  # APGD's curves too, where it ran
    return RetrainRun(
        rev=rev, label=str(retrain["method"]), cell={k: params.get(k) for k in CELL_KEYS}, retrain=retrain,
        summary=_json(repo, commit, "metrics/summary.json"),
        sanity_retrained={k: float(v) for k, v in (attack.get("sanity") or {}).items()},
        curves={a: _curve(repo, commit, f"metrics/curves/attack_retrained/{a}.csv") for a in attacks},
        original_curves={a: _curve(repo, commit, f"metrics/curves/attack_original/{a}.csv") for a in attacks},
        target_fooling_rate=float((params.get("attack") or {}).get("target_fooling_rate", 0.9)),
    )


def check_same_cell(runs: list[RetrainRun]) -> None:
    """The runs are one cell with one original model (they differ only in the retraining).

    Raises
    ------
    DataError
        Naming the runs and what differs.
    """
    first = runs[0]
    for run in runs[1:]:
        if run.cell != first.cell:
            raise DataError(f"{run.rev} is cell {run.cell}, {first.rev} is {first.cell}: compare one cell's runs")
        for key in SHARED:
            a, b = first.summary.get(key), run.summary.get(key)
            if a is None or b is None or not math.isclose(a, b, rel_tol=0, abs_tol=1e-12):
                raise DataError(f"{key} is {a} in {first.rev} and {b} in {run.rev}: not the same original model "
                                "(rerun both from one commit of the data and training stages)")
        if sorted(run.curves) != sorted(first.curves):
            raise DataError(f"{run.rev} attacks {sorted(run.curves)} but {first.rev} {sorted(first.curves)}")


def _labels(runs: list[RetrainRun]) -> list[str]:
    methods = [r.label for r in runs]
    return [f"{r.label} ({r.rev})" if methods.count(r.label) > 1 else r.label for r in runs]


ROWS = (  # (row label, summary key, scale, format)
    ("clean test accuracy of the retrained model (%)", "accuracy_retrained", 100.0, "{:.1f}"),
    ("accuracy drop (points)", "accuracy_drop", 1.0, "{:+.1f}"),
    ("clean-finetune control: accuracy with the same epochs, clean loss (%)", "accuracy_control", 100.0, "{:.1f}"),
    ("bounded fooling rate, mean of the six (%)", "bounded_fooling_rate", 100.0, "{:.1f}"),
    ("ε_r (Table III)", "eps_ratio", 1.0, "{:.2f}"),
    ("APGD minus the best of the six, within the bound (points)", "reference_gap_retrained", 1.0, "{:+.1f}"),
)


def comparison_json(runs: list[RetrainRun]) -> dict[str, Any]:
    """``retraining.json``: the cell, the original model's numbers and per run its settings and numbers."""
    first = runs[0]
    keys = [k for _, k, _, _ in ROWS]
    per_run = {}
    for label, run in zip(_labels(runs), runs):
        numbers = {k: run.summary[k] for k in keys if k in run.summary}
        for k in ("accuracy_drop_p", "bounded_fooling_rate_p", "eps_ratio_p", "reference_flag_retrained",
                  "bounded_fooling_rate_ci_low", "bounded_fooling_rate_ci_high"):
            if k in run.summary:
                numbers[k] = run.summary[k]
        per_run[label] = {"rev": run.rev, "fgsm_retrain": run.retrain, "metrics": numbers,
                          "fr_nondecreasing_in_eps": run.sanity_retrained.get("fr_nondecreasing_in_eps")}
    return {"cell": first.cell, "original": {k: first.summary[k] for k in SHARED}, "runs": per_run}


def comparison_markdown(runs: list[RetrainRun]) -> str:
    """``retraining.md``: one column per run."""
    labels = _labels(runs)
    first = runs[0]
    rows = []
    for name, key, scale, fmt in ROWS:
        rows.append([name, *(fmt.format(scale * r.summary[key]) if key in r.summary else "–" for r in runs)])
    rows.append(["APGD flags the retrained model", *("**yes**" if r.summary.get("reference_flag_retrained") == 1.0
                                                     else ("no" if "reference_flag_retrained" in r.summary else "–")
                                                     for r in runs)])
    rows.append(["fresh BIM's FR never falls as ε grows (masking check)",
                 *({1.0: "pass", 0.0: "**FAIL**"}.get(r.sanity_retrained.get("fr_nondecreasing_in_eps"), "–")
                   for r in runs)])
    shown = {"fgsm": ("method", "epsilon", "epochs", "alpha"),
             "pgd": ("method", "epsilon", "epochs", "alpha", "pgd_steps", "pgd_rel_stepsize")}
    settings = [", ".join(f"{k} {r.retrain[k]}" for k in shown.get(r.label, tuple(r.retrain)) if k in r.retrain)
                for r in runs]
    cell = " / ".join(str(first.cell[k]) for k in CELL_KEYS)
    return "\n".join([
        f"# Retraining compared: {cell}\n",
        f"The original model: clean accuracy {100 * first.summary['accuracy']:.1f} %, bounded fooling rate "
        f"{100 * first.summary['bounded_fooling_rate_original']:.1f} % (mean of the six). Runs: "
        + "; ".join(f"{label} = `{r.rev}` ({s})" for label, r, s in zip(labels, runs, settings)) + ".\n",
        tabulate(rows, ["", *labels], tablefmt="github"),
        f"\nRobustness curves of every retrained model beside the original (unbounded attacks): `{CURVES_NAME}`.\n",
    ])


def write_comparison(runs: list[RetrainRun], *, out_dir: Path) -> None:
    """Write ``retraining.md``, ``retraining.json`` and the curves PNG into ``out_dir``."""
    check_same_cell(runs)
    labels = _labels(runs)
    curves = {a: {"original": runs[0].original_curves[a], **{f"{label}-retrained": r.curves[a]
                                                            for label, r in zip(labels, runs)}}
              for a in runs[0].curves}
    bound = float(runs[0].summary["bound_l2"])
    figures.robustness_curves(curves=curves, bound=bound, target_fooling_rate=runs[0].target_fooling_rate,
                              path=out_dir / CURVES_NAME)
    write_text(out_dir / MARKDOWN_NAME, comparison_markdown(runs))
    write_json(out_dir / JSON_NAME, comparison_json(runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="REV",
                        help="a git revision or DVC experiment name with a finished pipeline's metrics (twice or more)")
    parser.add_argument("--out", type=Path, default=Path("reports/retraining"), help="folder to write to")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository (default: here)")
    args = parser.parse_args(argv)
    if len(args.run) < 2:
        parser.error("give at least two --run revisions to compare")
    try:
        runs = [read_run(args.repo, rev) for rev in args.run]
        write_comparison(runs, out_dir=args.out)
    except DataError as exc:
        print(f"retraining: {exc}", file=sys.stderr)
        return 1
    print(f"retraining: wrote {args.out / MARKDOWN_NAME}, {args.out / JSON_NAME}, {args.out / CURVES_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
