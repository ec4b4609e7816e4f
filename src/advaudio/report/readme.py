"""``python -m advaudio.report.readme``: write the README's Results block from the committed metrics.

The block between ``<!-- results:start -->`` and ``<!-- results:end -->`` is replaced by tables computed from
``metrics/summary.json``, ``metrics/attack_<mode>.json`` and ``metrics/roundtrip.json``, and the spread over seeds
from the committed multi-seed grid (``reports/seeds/tables.json``, when there), so the README states the numbers
of the run it is committed with and never a number typed by hand. ``--check`` exits 1 when the block
differs from what the metrics give (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from advaudio.io import write_text

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.2g}"


def results_markdown(metrics_dir: Path, seeds: Path | None = None) -> str:
    """The Results block of the README for the run whose metrics are in ``metrics_dir``; with ``seeds`` (the
    multi-seed grid's ``tables.json``) the spread over seeds of the same cell."""
    s = _load(metrics_dir / "summary.json")
    modes = {m: _load(metrics_dir / f"attack_{m}.json")
             for m in ("original", "original_bounded", "retrained_bounded", "retrained")}
    attacks = [a for a in modes["original"] if isinstance(modes["original"][a], dict) and "fooling_rate" in
               modes["original"][a] and a != "mean"]
    drop = s["accuracy_drop"]
    lines = [
        "| | original | retrained | comparison |",
        "|---|---|---|---|",
        f"| Table I: clean test accuracy (%) | {100 * s['accuracy']:.1f} [{100 * s['accuracy_ci_low']:.1f}, "
        f"{100 * s['accuracy_ci_high']:.1f}] | {100 * s['accuracy_retrained']:.1f} "
        f"[{100 * s['accuracy_retrained_ci_low']:.1f}, {100 * s['accuracy_retrained_ci_high']:.1f}] | "
        f"drop {drop:.2f} points, {_p(s['accuracy_drop_p'])} |",
        f"| Table II: FR within the bound, mean of {len(attacks)} attacks (%) | "
        f"{100 * s['bounded_fooling_rate_original']:.1f} [{100 * s['bounded_fooling_rate_original_ci_low']:.1f}, "
        f"{100 * s['bounded_fooling_rate_original_ci_high']:.1f}] | {100 * s['bounded_fooling_rate']:.1f} "
        f"[{100 * s['bounded_fooling_rate_ci_low']:.1f}, {100 * s['bounded_fooling_rate_ci_high']:.1f}] | "
        f"{_p(s['bounded_fooling_rate_p'])} |",
    ]
    if "eps_ratio" in s:
        lines.append(f"| Table III: ε_r = ε_a / ε_o, mean of {int(s['eps_ratio_n_attacks'])} attacks | | "
                     f"{s['eps_ratio']:.2f} [{s['eps_ratio_ci_low']:.2f}, {s['eps_ratio_ci_high']:.2f}] | "
                     f"{int(s['eps_ratio_n_pairs'])} pairs, {_p(s['eps_ratio_p'])} |")
    lines += ["", "| attack | FR of the search (%), o / a | mean ε, o / a | FR within the bound (%), o / a | "
              "ε_r paired (pairs, p) |", "|---|---|---|---|---|"]
    for a in attacks:
        o, r = modes["original"][a], modes["retrained"][a]
        ob, rb = modes["original_bounded"][a], modes["retrained_bounded"][a]
        ratio = (f"{s[f'eps_ratio_{a}']:.2f} ({int(s[f'eps_ratio_{a}_n_pairs'])}, {_p(s[f'eps_ratio_{a}_p'])})"
                 if f"eps_ratio_{a}" in s else "–")
        lines.append(f"| {a} | {100 * o['fooling_rate']:.1f} / {100 * r['fooling_rate']:.1f} | "
                     f"{o['mean_l2']:.3f} / {r['mean_l2']:.3f} | {100 * ob['fr_at_bound']:.1f} / "
                     f"{100 * rb['fr_at_bound']:.1f} | {ratio} |")
    words = [
        "",
        f"On these numbers FGSM retraining {'lowers' if drop > 0 else 'raises'} clean accuracy by {abs(drop):.1f} "
        f"points ({_p(s['accuracy_drop_p'])}; the clean-loss control retraining reaches "
        f"{100 * s['accuracy_control']:.1f} %), the bounded fooling rate goes from "
        f"{100 * s['bounded_fooling_rate_original']:.1f} % to {100 * s['bounded_fooling_rate']:.1f} % "
        f"({_p(s['bounded_fooling_rate_p'])})"
        + (f" and attacks need {s['eps_ratio']:.2f}× larger perturbations ({_p(s['eps_ratio_p'])})"
           if "eps_ratio" in s else "") + ". This is one seed: read it with the spread over seeds in mind "
        + ("(below)." if seeds is not None and seeds.is_file() else "(\"Seeds\" above)."),
    ]
    words += ["", sizing_sentence(s, n_victims=int(modes["original"]["n_victims"]))]
    round_trip = metrics_dir / "roundtrip.json"
    if round_trip.is_file() and _load(round_trip).get("supported"):
        rt = _load(round_trip)
        parts = [f"{a} {100 * rt[a]['fooling_rate']:.1f} % (n {rt[a]['n']}, median SNR {rt[a]['snr_db_median']:.1f} dB)"
                 for a in attacks if a in rt]
        words += ["", "**Beyond the study: do the adversarials survive as sound?** Stage `roundtrip` turns each "
                  "fooled victim's perturbation into a waveform and classifies it again (docs/PROTOCOL.md \"Audio "
                  "round trip\"; WAVs in `reports/roundtrip/`). Still fooling after the round trip: "
                  + "; ".join(parts) + "."]
    if "reference_gap_original" in s:
        words += ["", reference_sentence(s)]
    if "transfer_masking_flag" in s:
        words += ["", transfer_sentence(s, _load(metrics_dir / "transfer.json"))]
    if "pgd_bounded_fooling_rate" in s:
        words += ["", pgd_sentence(s)]
    if seeds is not None and seeds.is_file():
        words += ["", *spread_markdown(_load(seeds), s)]
    return "\n".join([START, *lines, *words, END])


def reference_sentence(s: dict) -> str:
    """APGD against the best of the six, within the bound, for both models (docs/PROTOCOL.md "Reference attack")."""
    parts = []
    for model in ("original", "retrained"):
        rates = {k.rsplit(f"reference_fooling_rate_{model}_", 1)[1]: v for k, v in s.items()
                 if k.startswith(f"reference_fooling_rate_{model}_")}
        best = max(rates, key=rates.get)
        flag = "flagged: the six overstate its robustness" if s[f"reference_flag_{model}"] == 1.0 else "not flagged"
        parts.append(f"the {model} model {100 * rates[best]:.1f} % ({best}; {s[f'reference_gap_{model}']:+.1f} points "
                     f"against the best of the six, {_p(s[f'reference_gap_{model}_p'])}, {flag})")
    return ("**Reference attack.** APGD within the bound (docs/PROTOCOL.md \"Reference attack\"): "
            + "; ".join(parts) + ".")


def transfer_sentence(s: dict, transfer: dict) -> str:
    """The masking check of stage ``transfer`` (docs/PROTOCOL.md "Transfer within the cell")."""
    m = transfer["masking"]
    verdict = ("flagged: a sign of gradient masking" if s["transfer_masking_flag"] == 1.0 else "not flagged")
    return ("**Transfer and gradient masking.** Of the retrained model's "
            f"{int(m['n'])} correctly classified victims, the original model's bounded adversarials fool at most "
            f"{100 * m['transfer'][m['best_transfer']]:.1f} % ({m['best_transfer']}), its own white-box attacks "
            f"{100 * m['white_box'][m['best_white_box']]:.1f} % ({m['best_white_box']}): "
            f"{s['transfer_masking_gap']:+.1f} points, {_p(s['transfer_masking_p'])}, {verdict} (docs/PROTOCOL.md "
            "\"Transfer within the cell\"; `reports/transfer.png`).")


def pgd_sentence(s: dict) -> str:
    """FGSM against PGD retraining (docs/PROTOCOL.md "Adversarial retraining: FGSM or PGD")."""
    eps = (f", ε_r {s['pgd_eps_ratio']:.2f} vs {s['eps_ratio']:.2f}"
           if "eps_ratio" in s and "pgd_eps_ratio" in s else "")
    return ("**FGSM or PGD retraining?** The PGD-retrained model (stage `pgd_retrain`): clean accuracy "
            f"{100 * s['pgd_accuracy_retrained']:.1f} % vs FGSM's {100 * s['accuracy_retrained']:.1f} % "
            f"({_p(s['pgd_accuracy_minus_fgsm_p'])}); fooling rate within the bound, mean of the six, "
            f"{100 * s['pgd_bounded_fooling_rate']:.1f} % vs {100 * s['bounded_fooling_rate']:.1f} % "
            f"({_p(s['pgd_bounded_fooling_rate_p'])}){eps} (docs/PROTOCOL.md \"Adversarial retraining: FGSM or PGD\"; "
            "`reports/retraining_curves.png`).")


SPREAD = (  # (finding key in tables.json "seeds", label, scale, format)
    ("accuracy", "clean test accuracy (%)", 100.0, "{:.1f}"),
    ("accuracy_drop", "accuracy drop after FGSM retraining (points)", 1.0, "{:+.1f}"),
    ("bounded_fooling_rate", "bounded fooling rate of the retrained model, mean of the six (%)", 100.0, "{:.1f}"),
    ("eps_ratio", "ε_r (Table III)", 1.0, "{:.2f}"),
)


def spread_markdown(tables: dict, summary: dict) -> list[str]:
    """The spread over seeds of the cell ``summary`` belongs to, from the grid's ``tables.json``: per-seed values,
    mean ± sd, the range mean ± 2 sd a fresh clone's run should land in, seeds agreeing and p (docs/PROTOCOL.md
    "Findings over seeds"). Empty when the grid has no such cell with two seeds or more."""
    n_classes = summary.get("n_classes")
    entries = [e for e in tables.get("seeds", []) if len(e.get("seeds", [])) > 1]
    if not entries or n_classes is None:
        return []
    entry = entries[0]
    findings = entry["findings"]
    seeds = [str(x) for x in entry["seeds"]]
    head = f"| over {len(seeds)} seeds | " + " | ".join(f"seed {x}" for x in seeds) + \
        " | mean ± sd | expect (mean ± 2 sd) | seeds agreeing, p |"
    lines = [f"**Spread over seeds** (`reports/seeds/`: {entry['dataset']} / {entry['representation']} / "
             f"{entry['model']}, seeds {', '.join(seeds)}; `seed` drives initialisation, shuffling, victims and "
             "targets on one dataset):", "", head, "|---" * (len(seeds) + 4) + "|"]
    for key, label, scale, fmt in SPREAD:
        f = findings.get(key)
        if f is None or f.get("sd") is None:
            continue
        mean, sd = scale * f["mean"], scale * f["sd"]
        values = " | ".join(fmt.format(scale * f["per_seed"][x]) for x in seeds)
        p = "n/a" if f["p_value"] is None else _p(f["p_value"])
        lines.append(f"| {label} | {values} | {fmt.format(mean)} ± {abs(sd):.2f} | "
                     f"{fmt.format(mean - 2 * sd)} to {fmt.format(mean + 2 * sd)} | {f['agree']}/{f['n_seeds']}, {p} |")
    lines += ["", "A fresh clone's `make repro` is seed 0: on this kind of machine it reproduces that column to the "
              "byte; on another machine (training kernels differ between CPUs) expect each number within the "
              "range of the last column. \"Seeds agreeing\" counts the seeds whose number points the finding's way "
              "(accuracy above chance, a drop above 0, a lower bounded fooling rate after retraining, ε_r above 1) "
              "and p is the t-test over seeds."]
    return lines


def clips_for_half_width(p: float, half_width: float, z: float = 1.96) -> int:
    """Clips (or victims) for a 95 % interval of ``±half_width`` around a rate ``p`` (normal approximation)."""
    return math.ceil(z * z * p * (1 - p) / half_width**2)


def sizing_sentence(s: dict, *, n_victims: int) -> str:
    """How well one seed pins accuracy and the bounded fooling rate down, and what ±6 points would take."""
    acc, fr = s["accuracy"], s["bounded_fooling_rate_original"]
    acc_hw = 50 * (s["accuracy_ci_high"] - s["accuracy_ci_low"])
    fr_hw = 50 * (s["bounded_fooling_rate_original_ci_high"] - s["bounded_fooling_rate_original_ci_low"])
    return (f"One seed pins these down loosely: {int(s['n_test'])} test clips give accuracy ±{acc_hw:.1f} points, "
            f"{n_victims} victims the mean bounded fooling rate ±{fr_hw:.1f} (half-widths of the 95 % intervals). "
            f"±6 points would need about {clips_for_half_width(acc, 0.06)} test clips for accuracy and "
            f"{clips_for_half_width(fr, 0.06)} victims for one attack's fooling rate at these rates (normal "
            "approximation).")


def replace_block(text: str, block: str) -> str:
    """``text`` with its Results block replaced by ``block``. Raises ValueError without both markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {START} ... {END} block")
    return text[:start] + block + text[end + len(END):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advaudio.report.readme", description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics"))
    parser.add_argument("--seeds", type=Path, default=Path("reports/seeds/tables.json"),
                        help="the multi-seed grid's tables.json (the spread over seeds; skipped when absent)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's block is out of date")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = replace_block(text, results_markdown(args.metrics, seeds=args.seeds))
    if args.check:
        if new != text:
            print(f"{args.readme}: the Results block differs from {args.metrics}/; run python -m advaudio.report.readme",
                  file=sys.stderr)
            return 1
        return 0
    write_text(args.readme, new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
