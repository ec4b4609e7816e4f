"""Stage `spectrogram`: build/audio -> build/features (each clip's representation at native resolution,
scaled to [0, 1], in float16 shards; resized to the model's input size when read).

Reads ``dataset``, ``representation`` and ``spectrogram`` from params.yaml. The [0, 1] scaling constants
come from the training split only and are stored in ``meta.json`` (docs/ARCHITECTURE.md "Features").
"""

import argparse
import sys

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params
from advaudio.errors import ConfigError, DataError
from advaudio.features.extract import build_features
from advaudio.stage_log import stage_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--audio", default="build/audio", help="the augment stage's folder")
    parser.add_argument("--out", default="build/features")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        with stage_summary("spectrogram", "clips") as counter:
            result = build_features(
                audio_dir=args.audio,
                out_dir=args.out,
                representation=params.representation,
                config=params.spectrogram,
                dataset=params.dataset,
            )
            counter.items = result.n_train + result.n_test
    except (ConfigError, DataError) as exc:
        print(f"spectrogram: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
