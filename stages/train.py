"""Stage `train`: train `model` on build/features; write the checkpoint, resume state, metrics, curves.

Outputs (docs/ARCHITECTURE.md): build/model/model.pt, metrics/train.json, metrics/train_live/ (DVCLive,
without touching dvc.yaml), metrics/confusion.csv. The state after each epoch is kept in build/.resume/train/
(no DVC output) until the outputs are written, so an interrupted training resumes at its last epoch unless an
input of the stage changed (src/advaudio/resume.py).
"""

import argparse
from pathlib import Path

from dvclive import Live

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params, resolve_device
from advaudio.io import write_json, write_text
from advaudio.models.checkpoint import save_checkpoint
from advaudio.resume import open_resume_folder
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.stage_log import run_stage, stage_summary
from advaudio.features.store import open_features
from advaudio.training.run import confusion_csv, train_victim



def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=Path, required=True, help="the spectrogram stage's folder")
    parser.add_argument("--model", type=Path, required=True, help="the checkpoint to write")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--live", type=Path, required=True, help="DVCLive folder of the training curves")
    parser.add_argument("--confusion", type=Path, required=True, help="CSV of test labels and predictions")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    reexec_with_tcmalloc()
    # Registry-backed names are validated by validate_params (build/params.ok); validating them here would import
    # every registry, the six attacks included, which this stage does not use.
    params = load_params("params.yaml", check_choices=False)
    features = open_features(args.features)
    resume = open_resume_folder("train", then="training starts from its first epoch",
                                extra={"device": resolve_device(params.device)})
    with stage_summary("train", "images") as counter:
        # Started empty: a resumed training replays the epochs it had finished (advaudio.training.run), so the
        # curves always equal an uninterrupted run's.
        with Live(str(args.live), dvcyaml=False, save_dvc_exp=False) as live:

            def log_epoch(record: dict) -> None:
                for key, value in record.items():
                    if key != "epoch":
                        live.log_metric(key, value)
                live.next_step()

            outcome = train_victim(params=params, features=features, resume=resume, on_epoch=log_epoch)
        save_checkpoint(args.model, model=outcome.model, config=outcome.config)
        write_json(args.metrics, outcome.metrics)
        write_text(args.confusion, confusion_csv(outcome))
        if resume is not None:
            resume.clear()  # every output is written: the state is no longer needed
        counter.items = int(outcome.metrics["images_per_second"] * outcome.metrics["seconds"])
    m = outcome.metrics
    print(f"train: {params.model} test accuracy {m['test_accuracy']:.3f}, macro F1 {m['macro_f1']:.3f}, "
          f"{m['epochs']} epochs")
    return 0


if __name__ == "__main__":
    arguments = parse()
    run_stage("train", lambda: main(arguments))
