"""Stage `attack@<mode>` (one `foreach` entry of dvc.yaml per mode): run the six attacks with budget search and write metrics, curves and examples.

`--mode clean` attacks build/model/model.pt and draws the victims; `clean_bounded` attacks it with
||delta||_2 <= attack.bound; `bounded` (with the bound) and `unbounded` attack build/model/retrained.pt; all
on the same victims (src/advaudio/evaluation/modes.py). Outputs: docs/ARCHITECTURE.md. Each attack's search
state is saved after every rung (build/attacks/.resume/<mode>/); a rerun after a crash continues where it stopped
(src/advaudio/evaluation/resume.py).
"""

import argparse
import csv
import io

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params
from advaudio.evaluation.attack_run import run_mode
from advaudio.evaluation.modes import MODES
from advaudio.io import save_npz, write_json, write_text
from advaudio.runtime import reexec_with_tcmalloc
from advaudio.stage_log import run_stage, stage_summary


def main(*, mode: str) -> int:
    reexec_with_tcmalloc()
    stage, stem = f"attack@{mode}", f"attack_{mode}"  # DVC's stage name; its files keep the stem
    with stage_summary(stage, "victims") as counter:
        run = run_mode(params=load_params("params.yaml"), mode=mode)
        out = f"build/attacks/{mode}"
        if MODES[mode].draws_victims:
            save_npz(f"{out}/victims.npz", **run.victims)
        save_npz(f"{out}/results.npz", **run.results)
        save_npz(f"{out}/examples.npz", **run.examples)
        for name, curve in run.curves.items():
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(["epsilon", "fooling_rate"])
            writer.writerows((f"{e:.6g}", f"{f:.6g}") for e, f in curve)
            write_text(f"metrics/curves/{stem}/{name}.csv", buf.getvalue())
        write_json(f"metrics/{stem}.json", run.metrics)
        run.store.clear()  # every output is written: the saved search states are no longer needed
        counter.items = run.metrics["n_victims"] * len(run.curves)
    failed = [k for k, v in run.metrics["sanity"].items() if not v]
    print(f"{stage}: mean FR {run.metrics['mean']['fooling_rate']:.2f}; sanity checks failed: {failed or 'none'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=list(MODES), required=True)
    mode = parser.parse_args().mode
    run_stage(f"attack@{mode}", lambda: main(mode=mode))
