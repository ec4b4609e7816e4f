"""Stage `tables`: this configuration's entries of the study's Tables I-III, the report and its figures.

Reads metrics/{train,fgsm_retrain,attack_original,attack_original_bounded,attack_retrained_bounded,attack_retrained}.json, the robustness
curves and build/attacks/original/examples.npz; writes metrics/summary.json (numbers only) and
reports/{report.md, figure1.png, curves.png}. Definitions: advaudio.report.summary and docs/PROTOCOL.md.
"""

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params
from advaudio.report.build import build_report
from advaudio.stage_log import run_stage, stage_summary


def main() -> int:
    params = load_params("params.yaml", check_choices=False)
    with stage_summary("tables", "attacks") as counter:
        summary = build_report(params=params)
        counter.items = len(summary.attacks)
    return 0


if __name__ == "__main__":
    run_stage("tables", main)
