"""One attack stage (a mode of :mod:`advaudio.evaluation.modes`): victims, budget search, metrics, checks.

``clean`` attacks the original model (``build/model/model.pt``) and draws and saves the victims;
``clean_bounded`` attacks it within the bound; ``bounded`` and ``unbounded`` attack the FGSM-retrained
model (``build/model/retrained.pt``). All modes use the same victims and targets. Victims the retrained
model already misclassifies stay in the denominator: the attacks run on them like on the others, so for
DeepFool (untargeted) they count as fooled with ||delta||_2 = 0, and targeted attacks still have to reach
the target. ``victims_misclassified`` in the metrics says how many there were, and ``results.npz`` holds
``model_correct`` per victim, so Table III can pair victims that both models classify correctly.

The victim's weights are frozen (``requires_grad`` off): every attack step would otherwise also compute
weight gradients nobody reads.

The test split is streamed, never held whole (:func:`~advaudio.features.store.open_split`): its
predictions are computed batch by batch, only the victims are read into memory, and PIA's starting pool
reads the split in batches and fetches just the start images it picks
(:class:`~advaudio.evaluation.pool_source.ReaderPool`). Peak memory therefore does not grow with the split.
"""

from __future__ import annotations

import dataclasses
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import advaudio

from advaudio.evaluation.budget import BudgetResult, budget_search
from advaudio.evaluation.victims import select_victims
from advaudio.config import PROFILES_DIR, Params, resolve_device
from advaudio.errors import ConfigError, DataError
from advaudio.evaluation.bound import effective_bound
from advaudio.evaluation.metrics import attack_summary, curve_end, epsilon_grid, robustness_curve
from advaudio.evaluation.memory import attack_batch_size
from advaudio.evaluation.modes import MODES
from advaudio.evaluation.precision import exact_float32
from advaudio.evaluation.resume import RESUME_DIR, ResumeStore, fingerprint
from advaudio.loading import read_npz
from advaudio.evaluation.sanity import run_sanity_checks
from advaudio.models.checkpoint import check_matches_features, load_checkpoint
from advaudio.evaluation.pool_source import ReaderPool
from advaudio.models.predict import predict_batches
from advaudio.features.store import open_split, read_meta


@dataclass
class ModeRun:
    """Everything an attack stage writes."""

    metrics: dict
    curves: dict[str, np.ndarray]  # attack -> (P, 2) epsilon, fooling_rate
    results: dict[str, np.ndarray]
    examples: dict[str, np.ndarray]
    victims: dict[str, np.ndarray]
    store: ResumeStore  # the per-rung search states; the stage clears it once its outputs are written


def run_mode(*, params: Params, mode: str, root: str | Path = ".") -> ModeRun:
    """Run every attack of ``params.attack.attacks`` in ``mode``.

    Raises
    ------
    ConfigError
        On an unknown mode or an attack without a ladder.
    DataError
        On missing or inconsistent inputs (the message names the file).
    """
    if mode not in MODES:
        raise ConfigError(f"mode {mode!r} is not allowed; choose from {list(MODES)}")
    root = Path(root)
    cfg = params.attack
    missing = [a for a in cfg.attacks if a not in cfg.ladders]
    if missing:
        raise ConfigError(f"attack.ladders has no ladder for {missing}")
    spec = MODES[mode]
    device = torch.device(resolve_device(params.device))
    meta = read_meta(root / "build/features")
    model = load_victim(root / "build/model" / spec.checkpoint, device=device, meta=meta)
    test = open_split(root / "build/features", "test", meta=meta)
    test_labels, class_names = test.y.numpy(), list(meta["class_names"])
    victims_path = root / "build/attacks/clean/victims.npz"
    batch = attack_batch_size(explicit=cfg.batch_size, model=model, input_shape=meta["input_shape"], device=device)
    print(f"attack@{mode}: {batch} victims per batch "
          f"({'attack.batch_size' if cfg.batch_size else 'sized from measured memory'})", flush=True)
    with exact_float32():
        logits = predict_batches(model, (xb for xb, _ in test.batches(batch_size=batch, device=device)))
    test_predictions = logits.argmax(dim=1).numpy()
    if spec.draws_victims:
        preds = test_predictions
        rows, targets = select_victims(labels=test_labels, predictions=preds, n_victims=cfg.n_victims,
                                       n_classes=len(class_names), seed=params.seed)
        if len(rows) < cfg.n_victims:
            print(f"attack@{mode}: WARNING: attack.n_victims = {cfg.n_victims}, but only {len(rows)} of the "
                  f"{len(test_labels)} test clips are classified correctly; attacking {len(rows)} "
                  f"(n_victims and n_victims_requested in metrics/attack_{mode}.json)", file=sys.stderr, flush=True)
    else:
        rows, targets = _load_victims(victims_path, test_labels)
    labels = test_labels[rows]
    x = test.read(rows, device=device)  # only the victims are ever held
    y_t, t_t = torch.from_numpy(labels).to(device), torch.from_numpy(targets).to(device)
    model_correct = test_predictions[rows] == labels
    misclassified = int((~model_correct).sum())

    bound_l2 = effective_bound(params=params, representation=str(meta["representation"]),
                               input_shape=meta["input_shape"], profiles_dir=root / PROFILES_DIR)
    print(f"attack@{mode}: L2 bound {bound_l2:.4g} (attack.bound {cfg.bound:g}, scaling {cfg.bound_scaling})",
          flush=True)
    bound = bound_l2 if spec.bounded else None
    store = _resume_store(params=params, mode=mode, root=root, device=device,
                          victims=None if spec.draws_victims else victims_path)
    results: dict[str, BudgetResult] = {}
    pool = ReaderPool(test, batch_size=batch)  # PIA's starting pool, read batch by batch
    for name in cfg.attacks:
        saved = store.load(name, shape=tuple(x.shape), n_levels=len(cfg.ladders[name]))
        if saved is not None:
            print(f"attack@{mode}: {name} resumes after rung {saved.level}/{saved.n_levels}"
                  f"{' (finished)' if saved.finished else ''}", flush=True)
        results[name] = budget_search(
            name=name, model=model, x=x, labels=y_t, targets=t_t, ladder=list(cfg.ladders[name]),
            target_fooling_rate=cfg.target_fooling_rate, batch_size=batch, bound=bound, amp=cfg.amp,
            starting_pool=pool, seed=attack_seed(seed=params.seed, name=name), resume=saved, on_rung=store.save,
        )
        r = results[name]
        print(f"attack@{mode}: {name} FR {r.fooling_rate:.2f} at level {r.level}/{r.n_levels} "
              f"in {r.seconds:.1f} s", flush=True)

    xn = x.cpu().numpy()
    grid = epsilon_grid(end=curve_end(bounded=spec.bounded, bound_l2=bound_l2, curve_max=cfg.curve_max,
                                      bound=cfg.bound), points=cfg.curve_points)
    metrics: dict = {}
    for name, r in results.items():
        m = attack_summary(x=xn, l2=r.l2, success=r.success, epsilons=grid, bound=bound_l2, seed=params.seed)
        m.update(level=r.level, n_levels=r.n_levels, seconds=r.seconds, gradient_calls=r.gradient_calls,
                 forward_calls=r.forward_calls)
        if r.black_box:
            m["queries"] = r.queries
        metrics[name] = m
    # mean over the attacks that have the key (size means are missing where nothing succeeded); intervals
    # of single attacks are not averaged
    counts = {"gradient_calls", "forward_calls", "queries"}
    keys = sorted(k for k in set().union(*(set(m) for m in metrics.values())) - counts if "_ci_" not in k)
    metrics["mean"] = {k: float(np.mean([metrics[a][k] for a in results if k in metrics[a]])) for k in keys}
    sanity = run_sanity_checks(model=model, x=x, labels=y_t, results=results, epsilons=grid, batch_size=batch,
                               bounded=spec.bounded, bound=bound_l2, target_fooling_rate=cfg.target_fooling_rate)
    for check, ok in sanity.items():
        print(f"attack@{mode}: sanity {check}: {'pass' if ok else 'FAIL'}", flush=True)
    metrics["sanity"] = sanity
    metrics["n_victims"] = len(rows)
    metrics["n_victims_requested"] = cfg.n_victims  # more than n_victims when too few clips were correct
    metrics["bound"] = bound_l2
    metrics["victims_misclassified"] = misclassified

    curves = {n: np.stack([grid, robustness_curve(l2=r.l2, success=r.success, epsilons=grid)], axis=1)
              for n, r in results.items()}
    out = {"model_correct": model_correct, "test_predictions": test_predictions, "test_labels": test_labels}
    for n, r in results.items():
        out[f"{n}_l2"], out[f"{n}_success"] = r.l2, r.success
        out[f"{n}_adv"] = r.adv  # every victim's adversarial (the input where it failed), for re-checking
    k = min(cfg.n_examples, len(rows))
    examples = {"x": xn[:k], "labels": labels[:k], "targets": targets[:k], "class_names": np.array(class_names)}
    for n, r in results.items():
        examples[f"{n}_adv"], examples[f"{n}_l2"] = r.adv[:k], r.l2[:k]
    victims = {"rows": rows, "labels": labels, "targets": targets}
    return ModeRun(metrics=metrics, curves=curves, results=out, examples=examples, victims=victims, store=store)


def attack_seed(*, seed: int, name: str) -> int:
    """The seed of attack ``name``'s budget search, derived from the params' ``seed`` and the name alone.

    So an attack's random draws (PIA's, the only seeded one) do not depend on which other attacks run or in
    what order. CRC-32 of ``"<seed>/<name>"`` is stable across processes and Python versions (unlike
    ``hash``, which is salted per process); the search adds the rung index (:func:`budget_search`).

    Returns
    -------
    int
        In ``[0, 2**32)``.
    """
    return zlib.crc32(f"{seed}/{name}".encode())


def _resume_store(*, params: Params, mode: str, root: Path, device: torch.device, victims: Path | None) -> ResumeStore:
    """The stage's :class:`~advaudio.evaluation.resume.ResumeStore`, keyed by everything its searches read."""
    features = root / "build/features"
    files = [root / "build/model" / MODES[mode].checkpoint, features / "meta.json"]
    files += [p for p in features.rglob("*") if p.is_file() and p.relative_to(features).parts[0].startswith("test")]
    if victims is not None:
        files.append(victims)
    settings = {"mode": mode, "attack": dataclasses.asdict(params.attack), "seed": params.seed, "device": str(device)}
    key = fingerprint(files=files, settings=settings, package_dir=Path(advaudio.__file__).parent)
    return ResumeStore(root / RESUME_DIR / mode, key=key)


def load_victim(path: Path, *, device: torch.device, meta: dict) -> torch.nn.Module:
    """The checkpoint at ``path`` as an attack victim: eval mode, channels_last, weights frozen.

    Raises
    ------
    DataError
        If it is not a usable checkpoint, or was trained on other features than ``meta`` describes.
    """
    model, config = load_checkpoint(path, device=device)
    check_matches_features(config, meta=meta, path=path)
    model = model.to(memory_format=torch.channels_last).eval()
    model.requires_grad_(False)
    return model


def _load_victims(path: Path, test_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{str(path)!r} not found; run attack@clean first (it draws the victims)")
    z = read_npz(path, keys=["rows", "labels", "targets"], kind="an advaudio victims file", hint="rerun attack@clean")
    rows, labels, targets = z["rows"], z["labels"], z["targets"]
    if rows.max(initial=-1) >= len(test_labels) or not np.array_equal(test_labels[rows], labels):
        raise DataError(f"{str(path)!r} does not match build/features/test.csv; rerun attack@clean")
    return rows.astype(np.int64), targets.astype(np.int64)
