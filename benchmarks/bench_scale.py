"""Scale benchmark at the study profile's input size on the CPU: storage per clip, and peak RSS at N and 2N clips.

For the study profile (``profiles/study.yaml``: 768 / 1308 x 1568 inputs) it measures

* ``stored_bytes_per_clip``: bytes the spectrogram stage stores per clip, per representation, for ESC-50 clips
  (5 s) and UrbanSound8K clips (4 s) (from the stored shapes) and as measured on disk for the synth clips run;
* ``seconds_per_clip``: the spectrogram stage's wall time per clip, per representation;
* ``peak_rss_mib``: peak RSS of the spectrogram stage, of training (one epoch) and of an attack stage
  (``attack_original``: 2 victims, one short rung per attack), each run at N and 2N synth clips, and of the
  augment stage at its own, larger N and 2N (``--augment-clips``: at the others' N its clips would be a few MB),
  and the ratio 2N / N (streaming: it should stay near 1);
* ``peak_rss_mib_baseline`` (with ``--baseline``): the augment stage's peak RSS measured the same way, in the same
  run, with the stages of another checkout (e.g. a clone at the commit before a change);
* ``plan``: the cost planner's projection (``python -m advaudio.plan``) for ESC-50 and UrbanSound8K at the study
  profile for the benchmarked model, on this machine.

    python benchmarks/bench_scale.py [--json build/bench_scale.json] [--clips 8] [--model alexnet]
                                     [--augment-clips 100] [--baseline CHECKOUT] [--only-augment]

Each stage runs as its own process in a copy of the repository (``stages/*.py``, no DVC); peak RSS is the
process's and its children's ``ru_maxrss`` (``os.wait4``). Keys: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_smoke import DVCLIVE_STUB, copy_repository, stage_commands  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REPRESENTATIONS = ("stft", "dwt", "stft_tonnetz", "dwt_tonnetz")
DATASETS = {"esc50": (5.0, 22050, 16000), "urbansound8k": (4.0, 22050, 8000)}  # seconds, audio rate, DWT rate


def run_stage(cmd: list[str], *, cwd: Path, env: dict) -> tuple[float, float, str]:
    """Run one stage; return (seconds, peak RSS MiB of it and its children, output)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, *cmd], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        out = log.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, out


def prepare(work: Path, *, clips_per_class: int, model: str, representation: str, repo: Path = REPO) -> dict:
    copy_repository(work, repo=repo)
    study = yaml.safe_load((REPO / "profiles" / "study.yaml").read_text())
    profile = dict(study)
    profile.update(
        synth={"n_classes": 2, "clips_per_class": clips_per_class, "clips_per_source": 1, "clip_seconds": 5.0,
               "n_folds": 4},
        split={"protocol": "official", "test_fold": 1},
        augment={"scales": [1.15], "workers": 1},
        train={**study.get("train", {}), "epochs": 1, "cross_validate": False, "batch_size": 2, "amp": False},
        attack={**study["attack"], "n_victims": 2, "batch_size": 2, "n_examples": 1,
                "ladders": {"bim_a": [{"epsilon": 1.0, "steps": 2}], "bim_b": [{"epsilon": 1.0, "steps": 2}],
                            "jsma": [{"max_iterations": 2, "theta": 0.1}], "deepfool": [{"steps": 2}],
                            "cw": [{"c": 1.0, "steps": 2, "binary_search_steps": 1}],
                            "pia": [{"epsilon": 0.1, "steps": 2, "samples": 4}]}},
    )
    profile["spectrogram"] = {**study.get("spectrogram", {}), "workers": 1}
    (work / "profiles" / "bench_scale.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params.update(profile="bench_scale", device="cpu", model=model, representation=representation)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the streaming path (no in-memory cache of a small split), which a study-sized split takes at any size
    env = dict(os.environ, PYTHONUNBUFFERED="1", ADVAUDIO_NO_TCMALLOC="1", CUDA_VISIBLE_DEVICES="",
               ADVAUDIO_READER_CACHE_MIB="0")
    try:
        import dvclive  # noqa: F401
    except ImportError:
        (work / ".stubs").mkdir()
        (work / ".stubs" / "dvclive.py").write_text(DVCLIVE_STUB)
        env["PYTHONPATH"] = str(work / ".stubs")
    return env


def stored_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and p.suffix == ".npy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="build/bench_scale.json", help="where to write the results")
    parser.add_argument("--clips", type=int, default=8, help="N: synth clips per class at the smaller size")
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--representation", default="stft_tonnetz", help="the one the RSS runs use")
    parser.add_argument("--augment-clips", type=int, default=100,
                        help="N: synth clips per class of the augment stage's RSS runs")
    parser.add_argument("--baseline", default=None,
                        help="a checkout (git work tree) whose augment stage is measured too, the same way")
    parser.add_argument("--only-augment", action="store_true",
                        help="measure only the augment stage's peak RSS (and the baseline's): minutes, not 15")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    scratch = Path(args.work or tempfile.mkdtemp(prefix="bench_scale_"))

    sys.path.insert(0, str(REPO / "src"))
    from advaudio.config import load_profile, merge_overrides, params_from_dict
    from advaudio.features.representations import stored_bytes_per_clip

    raw = merge_overrides(yaml.safe_load((REPO / "params.yaml").read_text()), load_profile("study", profiles_dir=REPO / "profiles"))
    spec = params_from_dict({**raw, "profile": "study"}).spectrogram
    result: dict = {"model": args.model, "clips_per_class": [args.clips, 2 * args.clips],
                    "augment_clips_per_class": [args.augment_clips, 2 * args.augment_clips],
                    "stored_bytes_per_clip": {}, "seconds_per_clip": {}, "peak_rss_mib": {"N": {}, "2N": {}},
                    "peak_rss_ratio": {}}
    # augment at its own N and 2N, and the baseline checkout's augment the same way
    checkouts = {"peak_rss_mib": REPO, **({"peak_rss_mib_baseline": Path(args.baseline)} if args.baseline else {})}
    for key, repo in checkouts.items():
        for label, clips in (("N", args.augment_clips), ("2N", 2 * args.augment_clips)):
            work = scratch / f"augment_{key}_{label}"
            env = prepare(work, clips_per_class=clips, model=args.model, representation=args.representation,
                          repo=repo)
            commands = stage_commands(root=repo)
            for stage in ("validate_params", "synth"):
                run_stage(commands[stage][1:], cwd=work, env=env)
            _, rss, _ = run_stage(commands["augment"][1:], cwd=work, env=env)
            result.setdefault(key, {"N": {}, "2N": {}})[label]["augment"] = rss
            shutil.rmtree(work, ignore_errors=True)
    if args.baseline:
        baseline = result["peak_rss_mib_baseline"]
        result["peak_rss_ratio_baseline"] = {"augment": baseline["2N"]["augment"] / baseline["N"]["augment"]}
    if args.only_augment:
        return finish(result, args)

    for dataset, (seconds, rate, dwt_rate) in DATASETS.items():
        result["stored_bytes_per_clip"][dataset] = {
            r: stored_bytes_per_clip(name=r, config=spec, n_samples=int(seconds * rate), sample_rate=rate,
                                     dwt_sample_rate=dwt_rate) for r in REPRESENTATIONS}

    # storage and time per clip, measured: the spectrogram stage on N synth clips for every representation
    measured = {}
    for representation in REPRESENTATIONS:
        work = scratch / f"features_{representation}"
        env = prepare(work, clips_per_class=args.clips, model=args.model, representation=representation)
        commands = stage_commands(root=REPO)
        for stage in ("validate_params", "synth", "augment"):
            run_stage(commands[stage][1:], cwd=work, env=env)
        secs, _, _ = run_stage(commands["spectrogram"][1:], cwd=work, env=env)
        meta = json.loads((work / "build" / "features" / "meta.json").read_text())
        n_clips = sum(1 for _ in (work / "build/features/train.csv").open()) - 1 + \
            sum(1 for _ in (work / "build/features/test.csv").open()) - 1
        measured[representation] = stored_bytes(work / "build" / "features") / n_clips
        result["seconds_per_clip"][representation] = secs / n_clips
        shutil.rmtree(work, ignore_errors=True)
        del meta
    result["stored_bytes_per_clip"]["synth_measured"] = measured

    # peak RSS at N and 2N clips
    for label, clips in (("N", args.clips), ("2N", 2 * args.clips)):
        work = scratch / f"rss_{label}"
        env = prepare(work, clips_per_class=clips, model=args.model, representation=args.representation)
        commands = stage_commands(root=REPO)
        for stage in ("validate_params", "synth", "augment"):
            run_stage(commands[stage][1:], cwd=work, env=env)
        for name in ("spectrogram", "train", "victims", "attack@original"):
            _, result["peak_rss_mib"][label][name], _ = run_stage(commands[name][1:], cwd=work, env=env)
        shutil.rmtree(work, ignore_errors=True)

    plan_json = scratch / "plan.json"
    subprocess.run([sys.executable, "-m", "advaudio.plan", "--profile", "study", "--datasets", "esc50",
                    "urbansound8k", "--models", args.model, "--device", "cpu", "--json", str(plan_json)],
                   cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO / "src")), check=False, capture_output=True)
    if plan_json.is_file():
        result["plan"] = json.loads(plan_json.read_text())
    return finish(result, args)


def finish(result: dict, args: argparse.Namespace) -> int:
    """Add the 2N / N ratios, write the JSON, print the summary and the verdict."""
    for stage in result["peak_rss_mib"]["N"]:
        result["peak_rss_ratio"][stage] = result["peak_rss_mib"]["2N"][stage] / result["peak_rss_mib"]["N"][stage]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    shown = ("stored_bytes_per_clip", "peak_rss_mib", "peak_rss_ratio", "peak_rss_mib_baseline",
             "peak_rss_ratio_baseline")
    print(json.dumps({k: result[k] for k in shown if k in result}, indent=2))
    ok = all(v <= 1e6 for d in result["stored_bytes_per_clip"].values() for v in d.values()) and \
        all(r <= 1.2 for r in result["peak_rss_ratio"].values())
    print(f"bench_scale: {'within' if ok else 'OUTSIDE'} the targets (<= 1 MB per clip, 2N/N peak RSS <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
