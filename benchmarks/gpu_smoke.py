"""GPU smoke run of the study profile's sizes: every stage on a few synth clips, timings and peak memory.

Runs, in a copy of the repository, every stage of the pipeline in order (the stage scripts themselves, without
DVC) at the study profile's input sizes (``profiles/study.yaml``: 768 / 1308 x 1568) on a few synth clips:
1 epoch, 4 victims, the first rung of each attack ladder (iterations capped by ``--max-steps`` so the whole run
stays within minutes), CUDA with bf16 autocast for training and the attacks. It then re-checks the GPU's stored
adversarials on the CPU (``advaudio.evaluation.recheck`` with no GPU visible) and writes
``<out>/gpu_smoke.json``: per stage seconds, peak RSS and peak CUDA memory, the re-check verdicts.

    bash benchmarks/gpu_smoke.sh                 # on a GPU machine; OUT=<folder> for the results
    python benchmarks/gpu_smoke.py --device cpu --tiny --out /tmp/smoke   # the same path on a CPU, small

DVC and DVCLive are not needed where it runs: the stage commands are read from dvc.yaml without DVC
(``advaudio.evaluation.stage_commands``), the stages then keep no resume state, and when ``dvclive`` is missing
a no-op stand-in is put on the path of the train stage (it only logs curves).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from advaudio.evaluation.stage_commands import attack_modes, stage_commands  # noqa: E402
# every stage of dvc.yaml in the order dvc repro runs them; their commands are dvc.yaml's (stage_commands)
STAGES = ["validate_params", "synth", "augment", "spectrogram", "train", "victims", "attack@original",
          "attack@original_bounded", "fgsm_retrain", "clean_finetune", "attack@retrained_bounded", "attack@retrained",
          "tables"]
DVCLIVE_STUB = '''"""No-op stand-in for dvclive where it is not installed (benchmarks/gpu_smoke.py)."""
class Live:
    def __init__(self, *a, **k): pass
    def __enter__(self): return self
    def __exit__(self, *a): return False
    def log_metric(self, *a, **k): pass
    def next_step(self): pass
'''


def smoke_profile(*, tiny: bool, max_steps: int, device: str) -> dict:
    """The study profile with the smoke run's overrides: few clips, 1 epoch, 4 victims, first rungs."""
    study = yaml.safe_load((REPO / "profiles" / "study.yaml").read_text())
    ladders = {}
    for name, ladder in study["attack"]["ladders"].items():
        rung = dict(ladder[0])
        for key in ("steps", "max_iterations"):
            if key in rung:
                rung[key] = min(int(rung[key]), max_steps)
        ladders[name] = [rung]
    profile = dict(study)
    profile.update(
        synth={"n_classes": 4, "clips_per_class": 4, "clips_per_source": 1, "clip_seconds": 5.0, "n_folds": 4},
        split={"protocol": "official", "test_fold": 1},
        augment={"scales": [1.15], "workers": 4},
        train={**study.get("train", {}), "epochs": 1, "cross_validate": False, "batch_size": 4, "amp": True},
        fgsm_retrain={"epochs": 1},
        attack={**study["attack"], "n_victims": 4, "n_examples": 2, "batch_size": 0, "amp": True,
                "target_fooling_rate": 1.0, "ladders": ladders},
    )
    if tiny:  # the same path at small sizes, for a CPU
        profile["spectrogram"] = {"height": 32, "width": 48, "tonnetz_height": 16, "dwt_scales": 32}
        profile["synth"]["clip_seconds"] = 1.0
    profile["device"] = device
    return profile


def copy_repository(dst: Path, *, repo: Path = REPO) -> None:
    """Copy the checkout ``repo``'s tracked and unignored files to ``dst``."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=repo,
                           check=True, capture_output=True, text=True).stdout.splitlines()
    for rel in files:
        src = repo / rel
        # not .dvc/: without git the copy is no DVC project, so its stages keep no resume state and the
        # commands are read from dvc.yaml without DVC (advaudio.evaluation.stage_commands)
        if src.is_file() and not rel.startswith(("metrics/", "reports/", ".dvc/")):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def parse_summary(stage: str, output: str) -> dict:
    """Seconds, peak RSS and peak CUDA memory from the stage's summary line (advaudio.stage_log)."""
    found = {}
    for line in output.splitlines():
        m = re.match(rf"{stage.split('_')[0]}\S*: \d+ \S+ in ([\d.]+) s .*peak RSS (\d+) MiB(?:, peak CUDA (\d+) MiB)?", line)
        if m:
            found = {"stage_seconds": float(m.group(1)), "peak_rss_mib": int(m.group(2)),
                     "peak_cuda_mib": int(m.group(3)) if m.group(3) else None}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "build/gpu_smoke"))
    parser.add_argument("--work", default="/tmp/advaudio_gpu_smoke", help="where the repository copy runs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small sizes (a CPU check of the same path)")
    parser.add_argument("--max-steps", type=int, default=10, help="cap on each first rung's iterations")
    args = parser.parse_args(argv)
    out, work = Path(args.out).resolve(), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    copy_repository(work)
    profile = smoke_profile(tiny=args.tiny, max_steps=args.max_steps, device=args.device)
    device = profile.pop("device")
    (work / "profiles" / "gpu_smoke.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params.update(profile="gpu_smoke", device=device)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PYTHONUNBUFFERED="1", ADVAUDIO_NO_TCMALLOC="1")
    try:
        import dvclive  # noqa: F401
    except ImportError:
        stub = work / ".stubs"
        stub.mkdir()
        (stub / "dvclive.py").write_text(DVCLIVE_STUB)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stub), env.get("PYTHONPATH")]))
    report: dict = {"device": device, "tiny": args.tiny, "max_steps": args.max_steps, "stages": {}}
    ok = True
    commands = stage_commands(root=work)
    for stage in STAGES:
        start = time.perf_counter()
        cmd = commands[stage]
        assert cmd[0] == "python", cmd
        proc = subprocess.run([sys.executable, *cmd[1:]], cwd=work, env=env, capture_output=True, text=True)
        entry = {"seconds": round(time.perf_counter() - start, 2), "returncode": proc.returncode,
                 **parse_summary(stage, proc.stdout)}
        report["stages"][stage] = entry
        print(f"{stage}: {entry}", flush=True)
        (out / "logs").mkdir(exist_ok=True)
        (out / "logs" / f"{stage}.txt").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            ok = False
            print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
            break
    if ok:  # the GPU's adversarials, classified again on the CPU
        cpu_env = dict(env, CUDA_VISIBLE_DEVICES="")
        report["cpu_recheck"] = {}
        for mode in attack_modes(root=work):
            proc = subprocess.run([sys.executable, "-m", "advaudio.evaluation.recheck", "--mode", mode], cwd=work,
                                  env=dict(cpu_env, PYTHONPATH=os.pathsep.join(filter(None, [str(work / "src"), cpu_env.get("PYTHONPATH")]))),
                                  capture_output=True, text=True)
            report["cpu_recheck"][mode] = {"agrees": proc.returncode == 0, "output": proc.stdout.strip().splitlines()}
            ok &= proc.returncode == 0
        report["summary"] = json.loads((work / "metrics" / "summary.json").read_text())
    report["ok"] = ok
    (out / "gpu_smoke.json").write_text(json.dumps(report, indent=2))
    print(f"gpu_smoke: {'ok' if ok else 'FAILED'}; {out / 'gpu_smoke.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
