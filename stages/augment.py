"""Stage `augment`: decode the selected dataset, split it and pitch-shift the training pool.

Reads `dataset` from `dataset_dir` (never modified) and writes build/audio/: clips/ (float16 shards),
index.csv, info.json and skipped.csv, as described in docs/ARCHITECTURE.md.
"""

import argparse

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.simd import pin_numpy_to_baseline

pin_numpy_to_baseline()  # before numpy is imported: the same bytes on every x86-64 CPU (src/advaudio/simd.py)
from advaudio.config import load_params
from advaudio.data.prepare import prepare_audio
from advaudio.stage_log import run_stage, stage_summary

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="the folder to write (clips/, index.csv, ...)")
    out = parser.parse_args(argv).out
    # Registry-backed names are validated by validate_params; the dataset name is checked by its registry.
    params = load_params("params.yaml", check_choices=False)
    with stage_summary("augment", "clips") as counter:
        result = prepare_audio(params=params, out_dir=out)
        counter.items = result.n_rows
    print(
        f"augment: {result.n_original} originals ({result.n_test} test), {result.n_augmented} pitch-shifted "
        f"copies, {len(result.skipped)} skipped",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    run_stage("augment", main)
