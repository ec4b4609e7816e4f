"""Independent re-check of reported fooling rates from the stored adversarial examples.

Reads the model checkpoint, the victims, their test features (only those rows, through the streaming
reader) and every stored adversarial (``build/attacks/<mode>/results.npz``), classifies each adversarial
again with a plain forward pass and compares the resulting fooling rate with
``metrics/attack_<mode>.json``. The paths and whether the bound applies are the ones dvc.yaml passes the
stage ``attack@<mode>`` (read through DVC, so they are never typed twice). Run it as::

    python -m advaudio.evaluation.recheck --mode original   # or original_bounded / bounded / unbounded

It exits with status 1 when a reported fooling rate does not match.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from advaudio.attacks import ATTACKS
from advaudio.config import PROFILES_DIR, load_params
from advaudio.errors import DataError
from advaudio.evaluation.ball import within_bound
from advaudio.evaluation.bound import effective_bound
from advaudio.evaluation.metrics import l2_norms
from advaudio.evaluation.stage_commands import stage_options
from advaudio.io import read_json_object
from advaudio.loading import read_npz
from advaudio.models.checkpoint import check_matches_features, load_checkpoint
from advaudio.models.predict import predict
from advaudio.features.store import open_split, read_meta


def rechecked_success(
    *,
    model: torch.nn.Module,
    x: np.ndarray,
    adv: np.ndarray,
    labels: np.ndarray,
    targets: np.ndarray | None,
    bound: float | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-victim success of stored adversarials, decided only from the model's argmax.

    An adversarial counts when it is finite, inside [0, 1], within ``bound`` (L2, when given, with the
    tolerance of :func:`~advaudio.evaluation.ball.within_bound`) and is
    classified as the target (``targets`` given) or as any wrong class (``targets`` None).
    """
    pred = predict(model, torch.from_numpy(np.ascontiguousarray(adv, dtype=np.float32)),
                   batch_size=batch_size).argmax(dim=1).numpy()
    flat = adv.reshape(len(adv), -1)
    valid = np.isfinite(flat).all(axis=1) & (flat.min(axis=1) >= 0.0) & (flat.max(axis=1) <= 1.0)
    if bound is not None:
        valid &= within_bound(l2_norms(x=x, adv=adv), bound)
    hit = pred == targets if targets is not None else pred != labels
    return valid & hit


def recheck_mode(*, mode: str, root: str | Path = ".") -> dict[str, tuple[float, float]]:
    """``{attack: (reported FR, re-checked FR)}`` for the stage ``attack@<mode>``.

    Raises
    ------
    DataError
        Naming a missing file or an attack missing from the stored results.
    """
    root = Path(root)
    params = load_params(root / "params.yaml", check_choices=False)
    options = stage_options(f"attack@{mode}", root=root)
    checkpoint, features = root / options["checkpoint"], root / options["features"]
    model, config = load_checkpoint(checkpoint, device="cpu")
    meta = read_meta(features)
    check_matches_features(config, meta=meta, path=checkpoint)
    test = open_split(features, "test", meta=meta)
    metrics_path = root / options["metrics"]
    results_path = root / options["out"] / "results.npz"
    victims_path = root / options["victims"]
    for path in (metrics_path, results_path, victims_path):
        if not path.is_file():
            raise DataError(f"{str(path)!r} not found; run `dvc repro attack@{mode}` first")
    reported = read_json_object(metrics_path, missing_hint=f"run `dvc repro attack@{mode}` first")
    victims = read_npz(victims_path, keys=["rows", "labels", "targets"], kind="an advaudio victims file",
                       hint="rerun victims")
    rows, labels, targets = victims["rows"], victims["labels"], victims["targets"]
    if rows.min(initial=0) < 0 or rows.max(initial=-1) >= len(test):
        raise DataError(f"{str(victims_path)!r} names rows outside the {len(test)} rows of "
                        f"{features / 'test.csv'}; rerun victims")
    x = test.read(rows).numpy()  # the victims only
    # recomputed from the params, not read from the metrics under check
    bound = effective_bound(params=params, representation=str(meta["representation"]),
                            input_shape=meta["input_shape"], profiles_dir=root / PROFILES_DIR)
    out = {}
    reference = reported.get("reference") if isinstance(reported.get("reference"), dict) else {}
    for name in (*params.attack.attacks, *params.attack.reference):  # one attack's adversarials in memory at a time
        entry = reported.get(name) if name in params.attack.attacks else reference.get(name)
        if not isinstance(entry, dict) or "fooling_rate" not in entry:
            raise DataError(f"{str(metrics_path)!r} has no fooling rate for {name}; rerun attack@{mode}")
        adv = read_npz(results_path, keys=[f"{name}_adv"], kind="an advaudio attack results file",
                       hint=f"rerun attack@{mode}")[f"{name}_adv"]
        ok = rechecked_success(
            model=model, x=x, adv=adv, labels=labels,
            targets=targets if ATTACKS.get(name).targeted else None,
            bound=bound if options["bounded"] == "true" else None,
        )
        out[name] = (float(entry["fooling_rate"]), float(ok.mean()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="original", help="the stage attack@<mode> of dvc.yaml")
    parser.add_argument("--root", default=".")
    args = parser.parse_args(argv)
    try:
        rates = recheck_mode(mode=args.mode, root=args.root)
    except DataError as exc:
        print(f"recheck: {exc}", file=sys.stderr)
        return 2
    mismatches = 0
    for name, (reported, rechecked) in rates.items():
        same = abs(reported - rechecked) < 1e-9
        mismatches += not same
        print(f"{args.mode} {name}: reported FR {reported:.3f}, re-checked {rechecked:.3f} "
              f"{'ok' if same else 'MISMATCH'}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
