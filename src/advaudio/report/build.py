"""The ``tables`` stage's work: read the metrics, write the summary, the report and the figures."""

from __future__ import annotations

from pathlib import Path

from advaudio.config import Params
from advaudio.io import write_json, write_text
from advaudio.report import figures, layout
from advaudio.report.findings import check_findings
from advaudio.report.cell_transfer import read_cell_transfer, transfer_markdown, transfer_metrics, \
    write_transfer_heatmap
from advaudio.report.inputs import MODES, read_attack_metrics, read_attack_suite, read_curve, read_examples, read_json
from advaudio.report.paired import read_victim_results
from advaudio.report.pgd import compare_pgd, pgd_markdown
from advaudio.report.reference import reference_checks, reference_metrics
from advaudio.report.summary import Summary, summarize
from advaudio.report.tables import render_report


TRANSFER_PNG, PGD_CURVES_PNG = "transfer.png", "retraining_curves.png"


def build_report(
    *, params: Params, metrics_dir: str | Path = "metrics", build_dir: str | Path = "build",
    reports_dir: str | Path = "reports", round_trip: str | Path | None = None, transfer: str | Path | None = None,
    pgd_mode: str | None = None,
) -> Summary:
    """Write ``<metrics_dir>/summary.json`` and ``<reports_dir>/{report.md, figure1.png, curves.png}``; with
    ``round_trip`` (the roundtrip stage's ``metrics/roundtrip.json``) the report says whether the adversarials
    survive as sound; with ``transfer`` (the transfer stage's ``metrics/transfer.json``) whether they transfer
    between the original and the retrained model (and ``transfer.png``); with ``pgd_mode`` (the attack mode of
    the PGD-retrained model's unbounded search; ``<pgd_mode>_bounded`` its bounded stage; its retraining wrote
    ``metrics/pgd_retrain.json``) how FGSM and PGD retraining compare (and ``retraining_curves.png``).

    Raises
    ------
    DataError
        If an input file is missing or malformed; the message names it.
    """
    metrics_dir, build_dir, reports_dir = Path(metrics_dir), Path(build_dir), Path(reports_dir)
    train_path, retrain_path = metrics_dir / "train.json", metrics_dir / "fgsm_retrain.json"
    control_path = metrics_dir / "clean_finetune.json"
    suite = read_attack_suite(metrics_dir=metrics_dir)
    target = params.attack.target_fooling_rate
    bound = suite["retrained_bounded"].bound  # attack.bound at this input size, as the attack stages applied it
    attacks, reference = list(suite["original"].attacks), list(suite["original"].reference)
    results = {mode: read_victim_results(path=build_dir / "attacks" / mode / "results.npz",
                                         attacks=attacks + reference) for mode in MODES}
    summary = summarize(
        train=read_json(path=train_path), retrain=read_json(path=retrain_path), suite=suite, results=results,
        target_fooling_rate=target, seed=params.seed, train_path=train_path, retrain_path=retrain_path,
        control=read_json(path=control_path), control_path=control_path,
    )
    examples = read_examples(path=build_dir / "attacks" / "original" / "examples.npz", attacks=summary.attacks)
    summary.metrics["n_classes"] = float(len(examples["class_names"]))  # chance level, for findings over seeds
    checks = reference_checks(results=results, study=attacks, reference=reference, bound=bound)
    summary.metrics.update(reference_metrics(checks))
    beyond = []
    if transfer is not None:
        transfer_data = read_cell_transfer(path=transfer, attacks=attacks + reference)
        summary.metrics.update(transfer_metrics(transfer_data))
        beyond.append("\n".join(transfer_markdown(transfer_data, bound=bound, heatmap_name=TRANSFER_PNG)))
    if pgd_mode is not None:
        pgd_modes = {"unbounded": pgd_mode, "bounded": f"{pgd_mode}_bounded"}
        pgd_attacks = {k: read_attack_metrics(path=metrics_dir / f"attack_{m}.json") for k, m in pgd_modes.items()}
        for key, mode in (("pgd", pgd_modes["unbounded"]), ("pgd_bounded", pgd_modes["bounded"])):
            results[key] = read_victim_results(path=build_dir / "attacks" / mode / "results.npz",
                                               attacks=attacks + reference)
        pgd_path = metrics_dir / "pgd_retrain.json"
        comparison = compare_pgd(
            original=suite["original"], fgsm={"unbounded": suite["retrained"], "bounded": suite["retrained_bounded"]},
            pgd=pgd_attacks, results=results,
            pgd_retrain=read_json(path=pgd_path), pgd_retrain_path=pgd_path,
            accuracy_fgsm=summary.metrics["accuracy_retrained"], target_fooling_rate=target,
            method=params.fgsm_retrain.method, seed=params.seed)
        summary.metrics.update(comparison.metrics)
        beyond.append("\n".join(pgd_markdown(comparison, summary=summary.metrics, bound=bound,
                                             fgsm_sanity=suite["retrained"].sanity, curves_name=PGD_CURVES_PNG)))
    findings = check_findings(metrics=summary.metrics, bound=bound, target_fooling_rate=target)
    write_json(metrics_dir / "summary.json", summary.metrics)
    report = render_report(
        dataset=params.dataset, representation=params.representation, model=params.model, summary=summary,
        suite=suite, findings=findings, bound=bound, target_fooling_rate=target,
        round_trip=None if round_trip is None else read_json(path=round_trip), reference=checks, beyond=beyond,
    )
    write_text(reports_dir / "report.md", report)
    config = " / ".join(
        (layout.dataset_label(params.dataset), layout.representation_label(params.representation),
         layout.model_label(params.model))
    )
    figures.figure1(examples=examples, attacks=summary.attacks, path=reports_dir / "figure1.png", title=config)
    def curves_of(mode: str, attack: str) -> tuple:
        return read_curve(path=metrics_dir / "curves" / f"attack_{mode}" / f"{attack}.csv")

    curves = {a: {"original": curves_of("original", a), "retrained": curves_of("retrained", a)}
              for a in summary.attacks}
    figures.robustness_curves(
        curves=curves, bound=bound, target_fooling_rate=target, path=reports_dir / "curves.png"
    )
    if transfer is not None:
        write_transfer_heatmap(transfer_data, path=reports_dir / TRANSFER_PNG,
                               title=f"{config}: bounded adversarials; rows: source, columns: target; diagonal: "
                                     "white-box fooling rate, elsewhere: transfer rate")
    if pgd_mode is not None:
        both = {a: {"original": curves_of("original", a), "FGSM-retrained": curves_of("retrained", a),
                    "PGD-retrained": curves_of(pgd_mode, a)} for a in attacks + reference}
        figures.robustness_curves(curves=both, bound=bound, target_fooling_rate=target,
                                  path=reports_dir / PGD_CURVES_PNG)
    return summary
