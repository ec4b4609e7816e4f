"""Stage `attack@<mode>` (one `foreach` entry of dvc.yaml per mode): run every attack with budget search on the
victims and write metrics, curves and examples.

dvc.yaml passes the paths: the features, the attacked checkpoint (the original model or the FGSM-retrained
one), the victims (the `victims` stage's), whether the L2 bound applies, and where the outputs go
(docs/ARCHITECTURE.md). Each attack's search state is saved after every rung in build/.resume/attack@<mode>/;
a rerun after a crash continues where it stopped, unless an input of the stage changed
(src/advaudio/resume.py).
"""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params, resolve_device
from advaudio.evaluation.attack_run import AttackPaths, run_mode
from advaudio.evaluation.metrics import curve_csv
from advaudio.io import save_npz, write_json, write_text
from advaudio.resume import open_resume_folder
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.stage_log import run_stage, stage_summary


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", required=True, help="the stage is attack@<mode>")
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True, help="the attacked model")
    parser.add_argument("--victims", type=Path, required=True, help="the victims stage's victims.npz")
    parser.add_argument("--bounded", choices=["true", "false"], required=True,
                        help="keep every adversarial within the L2 bound (attack.bound)")
    parser.add_argument("--out", type=Path, required=True, help="folder of results.npz and examples.npz")
    parser.add_argument("--metrics", type=Path, required=True, help="the stage's metrics JSON")
    parser.add_argument("--curves", type=Path, required=True, help="folder of the FR(epsilon) CSVs")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    reexec_with_tcmalloc()
    stage = f"attack@{args.mode}"
    params = load_params("params.yaml")
    resume = open_resume_folder(stage, then="every attack starts from its first rung",
                                extra={"device": resolve_device(params.device)})
    with stage_summary(stage, "victims") as counter:
        run = run_mode(params=params, stage=stage, bounded=args.bounded == "true", resume=resume,
                       paths=AttackPaths(features=args.features, checkpoint=args.checkpoint, victims=args.victims))
        save_npz(args.out / "results.npz", **run.results)
        save_npz(args.out / "examples.npz", **run.examples)
        for name, curve in run.curves.items():
            write_text(args.curves / f"{name}.csv", curve_csv(curve))
        write_json(args.metrics, run.metrics)
        if resume is not None:
            resume.clear()  # every output is written: the saved search states are no longer needed
        counter.items = run.metrics["n_victims"] * len(run.curves)
    failed = [k for k, v in run.metrics["sanity"].items() if not v]
    print(f"{stage}: mean FR {run.metrics['mean']['fooling_rate']:.2f}; sanity checks failed: {failed or 'none'}")
    return 0


if __name__ == "__main__":
    arguments = parse()
    run_stage(f"attack@{arguments.mode}", lambda: main(arguments))
