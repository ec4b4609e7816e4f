"""Stage `fgsm_retrain`: FGSM adversarial retraining (Eq. 14) of the clean model.

Outputs: build/model/retrained.pt (same checkpoint format as model.pt), metrics/fgsm_retrain.json.
With `--control` it is stage `clean_finetune`: the same retraining with the clean loss only (alpha = 1),
writing metrics/clean_finetune.json and no checkpoint.
"""

import argparse
import sys

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params, resolve_device
from advaudio.errors import ConfigError, DataError
from advaudio.io import write_json
from advaudio.models.checkpoint import load_checkpoint, save_checkpoint
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.stage_log import stage_summary
from advaudio.features.store import open_features
from advaudio.training.fgsm_retrain import fgsm_retrain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--control", action="store_true", help="clean loss only (stage clean_finetune)")
    args = parser.parse_args()
    stage = "clean_finetune" if args.control else "fgsm_retrain"
    reexec_with_tcmalloc()
    try:
        params = load_params("params.yaml")
        features = open_features("build/features")
        clean_model, clean_config = load_checkpoint("build/model/model.pt", device=resolve_device(params.device))
    except (ConfigError, DataError) as exc:
        print(f"{stage}: {exc}", file=sys.stderr)
        return 2
    with stage_summary(stage, "images") as counter:
        outcome = fgsm_retrain(params=params, features=features, clean_model=clean_model, clean_config=clean_config,
                               alpha=1.0 if args.control else None)
        if not args.control:
            save_checkpoint("build/model/retrained.pt", model=outcome.model, config=outcome.config)
        write_json(f"metrics/{stage}.json", outcome.metrics)
        counter.items = int(outcome.metrics["epochs"] * outcome.metrics["n_train"])
    m = outcome.metrics
    print(f"{stage}: test accuracy {m['clean_test_accuracy']:.3f} -> {m['test_accuracy']:.3f} "
          f"({m['accuracy_drop_points']:.1f} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
