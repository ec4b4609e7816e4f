"""Stage `synth`: write the built-in synthetic dataset (ESC-50 layout) to build/synth.

Deterministic from `seed` and the `synth` params block: the same params give the same bytes.
"""

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params
from advaudio.data.synth import write_synth
from advaudio.stage_log import run_stage, stage_summary

OUT_DIR = "build/synth"


def main() -> int:
    # Registry-backed names are validated by validate_params; this stage reads only seed and synth.
    params = load_params("params.yaml", check_choices=False)
    with stage_summary("synth", "clips") as counter:
        counter.items = write_synth(out_dir=OUT_DIR, config=params.synth, seed=params.seed)
    return 0


if __name__ == "__main__":
    run_stage("synth", main)
