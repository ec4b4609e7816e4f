"""Stage `victims`: draw the attacked test clips and their targets once, for every attack stage.

Victims are drawn among the test clips the original model classifies correctly, stratified by class, with a
wrong target each (src/advaudio/evaluation/victims.py, docs/PROTOCOL.md "Victims and targets").
"""

import argparse

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params
from advaudio.evaluation.victims import draw_victims
from advaudio.io import save_npz
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.stage_log import run_stage, stage_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", required=True, help="the spectrogram stage's folder")
    parser.add_argument("--checkpoint", required=True, help="the original model")
    parser.add_argument("--out", required=True, help="victims.npz to write")
    args = parser.parse_args(argv)
    reexec_with_tcmalloc()
    # Registry-backed names are validated by validate_params (build/params.ok)
    params = load_params("params.yaml", check_choices=False)
    with stage_summary("victims", "victims") as counter:
        victims = draw_victims(params=params, features=args.features, checkpoint=args.checkpoint)
        save_npz(args.out, **victims)
        counter.items = len(victims["rows"])
    print(f"victims: {len(victims['rows'])} drawn ({params.attack.n_victims} asked for)")
    return 0


if __name__ == "__main__":
    run_stage("victims", main)
