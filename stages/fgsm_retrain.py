"""Stage `fgsm_retrain`: FGSM adversarial retraining (Eq. 14) of the clean model.

Outputs: build/model/retrained.pt (same checkpoint format as model.pt), metrics/fgsm_retrain.json.
"""

import sys

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params, resolve_device
from advaudio.errors import ConfigError, DataError
from advaudio.io import write_json
from advaudio.models.checkpoint import load_checkpoint, save_checkpoint
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.stage_log import stage_summary
from advaudio.training.data import load_features
from advaudio.training.fgsm_retrain import fgsm_retrain


def main() -> int:
    reexec_with_tcmalloc()
    try:
        params = load_params("params.yaml")
        features = load_features("build/features")
        clean_model, clean_config = load_checkpoint("build/model/model.pt", device=resolve_device(params.device))
    except (ConfigError, DataError) as exc:
        print(f"fgsm_retrain: {exc}", file=sys.stderr)
        return 2
    with stage_summary("fgsm_retrain", "images") as counter:
        outcome = fgsm_retrain(params=params, features=features, clean_model=clean_model, clean_config=clean_config)
        save_checkpoint("build/model/retrained.pt", model=outcome.model, config=outcome.config)
        write_json("metrics/fgsm_retrain.json", outcome.metrics)
        counter.items = int(outcome.metrics["epochs"] * outcome.metrics["n_train"])
    m = outcome.metrics
    print(f"fgsm_retrain: test accuracy {m['clean_test_accuracy']:.3f} -> {m['test_accuracy']:.3f} "
          f"({m['accuracy_drop_points']:.1f} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
