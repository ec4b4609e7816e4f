"""Stage `tables`: this configuration's entries of the study's Tables I-III, the report and its figures.

Reads metrics/{train,fgsm_retrain,pgd_retrain,transfer,roundtrip}.json and attack_<mode>.json of every attack
mode, the robustness curves, the per-victim results and build/attacks/original/examples.npz; writes
metrics/summary.json (numbers only) and reports/{report.md, figure1.png, curves.png, transfer.png,
retraining_curves.png}. Definitions: advaudio.report.summary and docs/PROTOCOL.md.
"""

import argparse

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params
from advaudio.report.build import build_report
from advaudio.stage_log import run_stage, stage_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, help="folder of the stages' metrics (summary.json goes there)")
    parser.add_argument("--build", required=True, help="folder of the attack stages' outputs (attacks/<mode>/)")
    parser.add_argument("--reports", required=True, help="folder of report.md and the figures")
    parser.add_argument("--roundtrip", required=True, help="the roundtrip stage's metrics JSON")
    parser.add_argument("--transfer", required=True, help="the transfer stage's metrics JSON")
    parser.add_argument("--pgd-mode", required=True,
                        help="the PGD-retrained model's unbounded attack mode (attack@<mode>; its bounded one is "
                        "<mode>_bounded), set beside the FGSM-retrained model")
    args = parser.parse_args(argv)
    params = load_params("params.yaml", check_choices=False)
    with stage_summary("tables", "attacks") as counter:
        summary = build_report(params=params, metrics_dir=args.metrics, build_dir=args.build,
                               reports_dir=args.reports, round_trip=args.roundtrip, transfer=args.transfer,
                               pgd_mode=args.pgd_mode)
        counter.items = len(summary.attacks)
    return 0


if __name__ == "__main__":
    run_stage("tables", main)
