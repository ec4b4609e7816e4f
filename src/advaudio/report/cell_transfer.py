"""The report's transfer section for one cell: ``metrics/transfer.json`` (stage ``transfer``,
:mod:`advaudio.evaluation.masking`) as summary keys, a table, a heat map and the gradient-masking verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advaudio.errors import DataError
from advaudio.report.figures import transfer_heatmaps
from advaudio.report.inputs import read_json, require_number

LABELS = {"original": "original", "retrained": "retrained"}


def read_cell_transfer(*, path: str | Path, attacks: list[str]) -> dict[str, Any]:
    """Load ``metrics/transfer.json`` and check it holds the 2 × 2 matrices of ``attacks`` and the masking check.

    Raises
    ------
    DataError
        Naming the file and what is missing.
    """
    data = read_json(path=path)
    models = data.get("models")
    if models != list(LABELS):
        raise DataError(f"{path}: 'models' is {models!r}; expected {list(LABELS)} (rerun stage transfer)")
    missing = [a for a in attacks if a not in (data.get("attacks") or {})]
    if missing:
        raise DataError(f"{path}: no transfer matrix for {missing}; rerun stage transfer")
    for a in attacks:
        for s in models:
            for t in models:
                entry = ((data["attacks"][a].get("matrix") or {}).get(s) or {}).get(t)
                if not isinstance(entry, dict):
                    raise DataError(f"{path}: {a} has no entry {s} -> {t}; rerun stage transfer")
                require_number(entry, "n", path=f"{path} [{a} {s} -> {t}]")
    masking = data.get("masking")
    if not isinstance(masking, dict):
        raise DataError(f"{path}: no 'masking' object; rerun stage transfer")
    for key in ("n", "gap_points", "p", "flagged"):
        require_number(masking, key, path=f"{path} [masking]")
    return data


def transfer_metrics(data: dict[str, Any]) -> dict[str, float]:
    """summary.json keys: ``transfer_masking_gap`` (points: best transferred minus best white-box attack on the
    retrained model), ``transfer_masking_p``, ``transfer_masking_flag`` (1/0) and per attack
    ``transfer_rate_original_to_retrained_<attack>`` (the share of the original's successful bounded adversarials
    that fool the retrained model; absent where none succeeded)."""
    m = data["masking"]
    out = {"transfer_masking_gap": float(m["gap_points"]), "transfer_masking_p": float(m["p"]),
           "transfer_masking_flag": float(m["flagged"])}
    for a, entry in data["attacks"].items():
        rate = entry["matrix"]["original"]["retrained"].get("rate")
        if rate is not None:
            out[f"transfer_rate_original_to_retrained_{a}"] = float(rate)
    return out


def _entry(e: dict[str, Any]) -> str:
    if e.get("rate") is None:
        return f"– ({int(e['n'])})"
    return f"{100 * e['rate']:.1f} [{100 * e['ci_low']:.1f}, {100 * e['ci_high']:.1f}] ({int(e['n'])})"


def transfer_markdown(data: dict[str, Any], *, bound: float, heatmap_name: str) -> list[str]:
    """The section: per attack the four entries, then the masking check."""
    m = data["masking"]
    lines = [
        "## Beyond the study: do the adversarials transfer between the original and the retrained model?",
        "",
        f"Each model's bounded adversarials (‖δ‖₂ ≤ {bound:.4g}, `attack@original_bounded` and "
        "`attack@retrained_bounded`) are classified by the other model. White box: the share of the model's victims "
        "(those it classifies correctly) that its own attack fools. Transfer: the share of the source's successful "
        "adversarials that also fool the target (the target class for targeted attacks), among the victims the "
        "target classifies correctly. Each entry: rate % [Wilson 95 %] (n) (docs/PROTOCOL.md \"Transfer within the "
        "cell\").",
        "",
        "| attack | original, white box | original → retrained | retrained, white box | retrained → original |",
        "|---|---|---|---|---|",
    ]
    for a, entry in data["attacks"].items():
        x = entry["matrix"]
        lines.append(f"| {a}{' (targeted)' if entry.get('targeted') else ''} | {_entry(x['original']['original'])} | "
                     f"{_entry(x['original']['retrained'])} | {_entry(x['retrained']['retrained'])} | "
                     f"{_entry(x['retrained']['original'])} |")
    p = "p < 0.001" if m["p"] < 0.001 else f"p = {m['p']:.2g}"
    verdict = ("**flagged: a transferred attack beats every white-box attack, a sign of gradient masking**"
               if m["flagged"] else "not flagged")
    lines += [
        "",
        f"Gradient-masking check (Carlini et al. 2019: black-box attacks must not beat white-box ones): of the "
        f"retrained model's {int(m['n'])} correctly classified victims, the best transferred attack "
        f"({m['best_transfer']}) fools {100 * m['transfer'][m['best_transfer']]:.1f} %, the best white-box attack "
        f"({m['best_white_box']}) {100 * m['white_box'][m['best_white_box']]:.1f} % ({m['gap_points']:+.1f} points, "
        f"McNemar {p}): {verdict}.",
        "",
        f"![transfer heat map]({heatmap_name})",
        "",
    ]
    return lines


def write_transfer_heatmap(data: dict[str, Any], *, path: str | Path, title: str) -> None:
    """The 2 × 2 matrices as heat maps (:func:`advaudio.report.figures.transfer_heatmaps`)."""
    models = data["models"]
    panels = {}
    for a, entry in data["attacks"].items():
        x = entry["matrix"]
        rates = np.array([[np.nan if x[s][t].get("rate") is None else x[s][t]["rate"] for t in models]
                          for s in models])
        panels[f"{a} ({'targeted' if entry.get('targeted') else 'untargeted'})"] = (
            rates, np.array([[x[s][t]["n"] for t in models] for s in models]))
    transfer_heatmaps(panels=panels, labels=[LABELS[m] for m in models], path=path, title=title)
