"""Stage `spectrogram`: build/audio -> build/features (each clip's representation at native resolution,
scaled to [0, 1], in float16 shards; resized to the model's input size when read).

Reads ``dataset``, ``representation`` and ``spectrogram`` from params.yaml. The [0, 1] scaling constants
come from the training split only and are stored in ``meta.json`` (docs/ARCHITECTURE.md "Features").
Crash-safe: the constants and each finished shard are staged in build/.resume/spectrogram/ (no DVC output); a
rerun after a crash or kill -9 reuses them and computes only the rest, unless an input of the stage changed
(src/advaudio/features/staging.py, src/advaudio/resume.py).
"""

import argparse

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.simd import pin_numpy_to_baseline

pin_numpy_to_baseline()  # before numpy is imported: the same bytes on every x86-64 CPU (src/advaudio/simd.py)
from advaudio.config import load_params
from advaudio.features.extract import build_features
from advaudio.features.shards import CLIPS_PER_SHARD
from advaudio.features.staging import IGNORED_PARAMS, spectrogram_extra
from advaudio.resume import open_resume_folder
from advaudio.stage_log import run_stage, stage_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--audio", required=True, help="the augment stage's folder")
    parser.add_argument("--out", required=True, help="the features folder to write")
    parser.add_argument("--clips-per-shard", type=int, default=CLIPS_PER_SHARD,
                        help=f"clips per shard file (default {CLIPS_PER_SHARD}; smaller values are for tests)")
    args = parser.parse_args(argv)
    # Registry-backed names are validated by validate_params (build/params.ok); validating them here would import
    # every registry, the six attacks included, which this stage does not use.
    params = load_params(args.params, check_choices=False)
    resume = open_resume_folder("spectrogram", then="every shard is computed again", ignore=IGNORED_PARAMS,
                                extra=spectrogram_extra(clips_per_shard=args.clips_per_shard))
    with stage_summary("spectrogram", "clips") as counter:
        result = build_features(
            audio_dir=args.audio,
            out_dir=args.out,
            representation=params.representation,
            config=params.spectrogram,
            dataset=params.dataset,
            clips_per_shard=args.clips_per_shard,
            resume=resume,
        )
        counter.items = result.n_train + result.n_test
    return 0


if __name__ == "__main__":
    run_stage("spectrogram", main)
