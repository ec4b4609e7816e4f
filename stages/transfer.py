"""Stage `transfer`: the original and the retrained model's bounded adversarials on each other, and the
gradient-masking check (a transferred attack that beats every white-box one; src/advaudio/evaluation/masking.py,
docs/PROTOCOL.md "Transfer within the cell").

Reads the bounded attack stages' results and both checkpoints; writes metrics/transfer.json.
"""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
import torch

from advaudio.config import load_params, resolve_device
from advaudio.evaluation.masking import run_cell_transfer
from advaudio.io import write_json
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.stage_log import run_stage, stage_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=Path, required=True, help="the spectrogram stage's folder")
    parser.add_argument("--victims", type=Path, required=True, help="the victims stage's victims.npz")
    for model in ("original", "retrained"):
        parser.add_argument(f"--{model}-checkpoint", type=Path, required=True, help=f"the {model} model")
        parser.add_argument(f"--{model}-results", type=Path, required=True,
                            help=f"results.npz of attack@{model}_bounded")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = parser.parse_args(argv)
    reexec_with_tcmalloc()
    # Registry-backed names are validated by validate_params (build/params.ok)
    params = load_params("params.yaml", check_choices=False)
    with stage_summary("transfer", "attacks") as counter:
        out = run_cell_transfer(
            features=args.features, victims=args.victims,
            checkpoints={"original": args.original_checkpoint, "retrained": args.retrained_checkpoint},
            results={"original": args.original_results, "retrained": args.retrained_results},
            device=torch.device(resolve_device(params.device)))
        write_json(args.metrics, out)
        counter.items = len(out["attacks"])
    m = out["masking"]
    print(f"transfer: best transferred attack {m['best_transfer']} fools {100 * m['transfer'][m['best_transfer']]:.1f} % "
          f"of the retrained model's {m['n']} victims, best white-box {m['best_white_box']} "
          f"{100 * m['white_box'][m['best_white_box']]:.1f} % (p = {m['p']:.2g}); masking flagged: {bool(m['flagged'])}")
    return 0


if __name__ == "__main__":
    run_stage("transfer", main)
