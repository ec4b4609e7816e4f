"""Stage `fgsm_retrain`: FGSM adversarial retraining (Eq. 14) of the clean model.

Outputs: build/model/retrained.pt (same checkpoint format as model.pt), metrics/fgsm_retrain.json.
With `--control` it is stage `clean_finetune`: the same retraining with the clean loss only (alpha = 1),
writing metrics/clean_finetune.json and no checkpoint. With `--method pgd` it is stage `pgd_retrain`: the same
retraining with PGD's x' whatever fgsm_retrain.method says (build/model/retrained_pgd.pt, metrics/pgd_retrain.json),
the study's FGSM retraining's comparison.
"""

import argparse
import dataclasses
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params, resolve_device
from advaudio.io import write_json
from advaudio.models.checkpoint import check_matches_features, load_checkpoint, save_checkpoint
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.stage_log import run_stage, stage_summary
from advaudio.features.store import open_features
from advaudio.training.fgsm_retrain import fgsm_retrain


def main(args: argparse.Namespace) -> int:
    control = args.control
    stage = _stage_name(control, args.method)
    reexec_with_tcmalloc()
    # Registry-backed names are validated by validate_params (build/params.ok); validating them here would import
    # every registry, the six attacks included, which this stage does not use.
    params = load_params("params.yaml", check_choices=False)
    if args.method is not None:
        params = dataclasses.replace(params, fgsm_retrain=dataclasses.replace(params.fgsm_retrain, method=args.method))
    features = open_features(args.features)
    clean_model, clean_config = load_checkpoint(args.checkpoint, device=resolve_device(params.device))
    check_matches_features(clean_config, meta=features.meta, path=args.checkpoint)
    with stage_summary(stage, "images") as counter:
        outcome = fgsm_retrain(params=params, features=features, clean_model=clean_model, clean_config=clean_config,
                               alpha=1.0 if control else None)
        if args.out is not None:
            save_checkpoint(args.out, model=outcome.model, config=outcome.config)
        write_json(args.metrics, outcome.metrics)
        counter.items = int(outcome.metrics["epochs"] * outcome.metrics["n_train"])
    m = outcome.metrics
    print(f"{stage}: test accuracy {m['clean_test_accuracy']:.3f} -> {m['test_accuracy']:.3f} "
          f"({m['accuracy_drop_points']:.1f} points)")
    return 0


def _stage_name(control: bool, method: str | None) -> str:
    if control:
        return "clean_finetune"
    return "fgsm_retrain" if method is None else f"{method}_retrain"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--control", action="store_true", help="clean loss only (stage clean_finetune)")
    parser.add_argument("--method", choices=["pgd"], help="craft x' with this method, not fgsm_retrain.method's "
                        "(stage pgd_retrain)")
    parser.add_argument("--features", type=Path, required=True, help="the spectrogram stage's folder")
    parser.add_argument("--checkpoint", type=Path, required=True, help="the original model")
    parser.add_argument("--out", type=Path, help="the retrained checkpoint to write (none for the control)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    arguments = parser.parse_args()
    if arguments.control and arguments.method is not None:
        parser.error("--control trains on the clean loss only; it takes no --method")
    run_stage(_stage_name(arguments.control, arguments.method), lambda: main(arguments))
