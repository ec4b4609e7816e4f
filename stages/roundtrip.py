"""Stage `roundtrip`: do the original model's adversarials survive as sound? (src/advaudio/evaluation/roundtrip_run.py)

Each fooled victim's input perturbation is turned into a waveform (STFT representations), analysed again with
the spectrogram stage's code and classified again; writes the round-trip fooling rate, n and SNR per attack and
the first victim's clean and round-trip clips as WAVs.
"""

import argparse
from pathlib import Path

import soundfile

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params
from advaudio.evaluation.roundtrip_run import round_trip_stage
from advaudio.io import atomic_path, write_json
from advaudio.stage_log import run_stage, stage_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("features", "audio", "checkpoint", "victims", "results", "metrics", "wavs"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params("params.yaml", check_choices=False)
    with stage_summary("roundtrip", "attacks") as counter:
        run = round_trip_stage(params=params, features=args.features, audio=args.audio, checkpoint=args.checkpoint,
                               victims=args.victims, results=args.results)
        args.wavs.mkdir(parents=True, exist_ok=True)
        for name, (samples, rate) in run.wavs.items():
            with atomic_path(args.wavs / name) as tmp:
                soundfile.write(tmp, samples, rate, format="WAV", subtype="FLOAT")
        write_json(args.metrics, run.metrics)
        counter.items = sum(isinstance(entry, dict) and "n" in entry for entry in run.metrics.values())
    mean = run.metrics.get("mean", {}).get("fooling_rate")
    print(f"roundtrip: mean round-trip FR {mean:.2f}" if mean is not None else "roundtrip: nothing to round-trip")
    return 0


if __name__ == "__main__":
    run_stage("roundtrip", main)
