"""Stage `synth`: write the built-in synthetic dataset (ESC-50 layout) to build/synth.

Deterministic from `data_seed` and the `synth` params block: the same params give the same bytes.
"""

import argparse

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.simd import pin_numpy_to_baseline

pin_numpy_to_baseline()  # before numpy is imported: the same bytes on every x86-64 CPU (src/advaudio/simd.py)
from advaudio.config import load_params
from advaudio.data.synth import write_synth
from advaudio.stage_log import run_stage, stage_summary

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="the folder to write the dataset to")
    out = parser.parse_args(argv).out
    # Registry-backed names are validated by validate_params; this stage reads only data_seed and synth.
    params = load_params("params.yaml", check_choices=False)
    with stage_summary("synth", "clips") as counter:
        counter.items = write_synth(out_dir=out, config=params.synth, seed=params.data_seed)
    return 0


if __name__ == "__main__":
    run_stage("synth", main)
