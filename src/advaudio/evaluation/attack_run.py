"""One attack stage (``attack@<mode>`` of dvc.yaml): budget search of every attack, metrics, checks.

dvc.yaml passes each stage its checkpoint (the original ``build/model/model.pt`` or the FGSM-retrained
``build/model/retrained.pt``), whether the L2 bound applies, and the victims the ``victims`` stage drew
(:mod:`advaudio.evaluation.victims`); every mode attacks the same victims with the same targets. Victims the
retrained model already misclassifies stay in the denominator: the attacks run on them like on the others, so
for DeepFool (untargeted) they count as fooled with ||delta||_2 = 0, and targeted attacks still have to reach
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

import functools
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from advaudio.config import PROFILES_DIR, Params, resolve_device
from advaudio.errors import ConfigError
from advaudio.evaluation.bound import effective_bound
from advaudio.evaluation.budget import BudgetResult, SearchState, budget_search
from advaudio.evaluation.memory import attack_batch_size
from advaudio.evaluation.metrics import attack_summary, curve_end, epsilon_grid, robustness_curve
from advaudio.evaluation.pool_source import ReaderPool
from advaudio.evaluation.sanity import run_sanity_checks
from advaudio.evaluation.search_state import read_search_state, state_file, write_search_state
from advaudio.evaluation.victims import load_victim, load_victims, predict_split
from advaudio.features.store import open_split, read_meta
from advaudio.resume import ResumeFolder


@dataclass(frozen=True)
class AttackPaths:
    """The files one attack stage reads, as dvc.yaml passes them (``stages/attack.py --help``)."""

    features: Path  # build/features
    checkpoint: Path  # build/model/model.pt (original) or retrained.pt
    victims: Path  # build/victims/victims.npz, drawn by the victims stage
    profiles: Path = Path(PROFILES_DIR)  # attack.bound_scaling reads the study profile's input size


@dataclass
class ModeRun:
    """Everything an attack stage writes."""

    metrics: dict
    curves: dict[str, np.ndarray]  # attack -> (P, 2) epsilon, fooling_rate
    results: dict[str, np.ndarray]
    examples: dict[str, np.ndarray]


def run_mode(*, params: Params, stage: str, paths: AttackPaths, bounded: bool,
             resume: ResumeFolder | None = None) -> ModeRun:
    """Run every attack of ``params.attack.attacks`` and ``params.attack.reference`` on the victims of ``paths``.

    The metrics hold the study's attacks at the top level with their ``mean``, the reference attacks under
    ``reference`` (no mean); the sanity checks, curves and ``results.npz`` cover both.

    Parameters
    ----------
    params : Params
        The params (``attack``, ``seed``, ``device``).
    stage : str
        The stage's name, for messages (``attack@original``).
    paths : AttackPaths
        Features, the attacked checkpoint and the victims.
    bounded : bool
        Keep every adversarial within the L2 bound (:func:`~advaudio.evaluation.bound.effective_bound`).
    resume : ResumeFolder, optional
        Where each attack's search state is saved after every rung, and taken from on a rerun.

    Raises
    ------
    ConfigError
        On an attack without a ladder.
    DataError
        On missing or inconsistent inputs (the message names the file).
    """
    cfg = params.attack
    missing = [a for a in (*cfg.attacks, *cfg.reference) if a not in cfg.ladders]
    if missing:
        raise ConfigError(f"attack.ladders has no ladder for {missing}")
    device = torch.device(resolve_device(params.device))
    meta = read_meta(paths.features)
    model = load_victim(paths.checkpoint, device=device, meta=meta)
    test = open_split(paths.features, "test", meta=meta)
    batch = attack_batch_size(explicit=cfg.batch_size, model=model, input_shape=meta["input_shape"], device=device)
    print(f"{stage}: {batch} victims per batch "
          f"({'attack.batch_size' if cfg.batch_size else 'sized from measured memory'})", flush=True)
    test_predictions = predict_split(model, test, batch_size=batch, device=device)
    rows, targets = load_victims(paths.victims, test_labels=test.y.numpy())
    victims = Victims(rows=rows, labels=test.y.numpy()[rows], targets=targets,
                      x=test.read(rows, device=device))  # only the victims are ever held
    bound_l2 = effective_bound(params=params, representation=str(meta["representation"]),
                               input_shape=meta["input_shape"], profiles_dir=paths.profiles)
    print(f"{stage}: L2 bound {bound_l2:.4g} (attack.bound {cfg.bound:g}, scaling {cfg.bound_scaling})", flush=True)
    results = search_all(params=params, stage=stage, model=model, victims=victims, batch=batch,
                         bound=bound_l2 if bounded else None, pool=ReaderPool(test, batch_size=batch), resume=resume)
    grid = epsilon_grid(end=curve_end(bounded=bounded, bound_l2=bound_l2, curve_max=cfg.curve_max, bound=cfg.bound),
                        points=cfg.curve_points)
    metrics = summarise({n: results[n] for n in cfg.attacks}, victims=victims, grid=grid, bound_l2=bound_l2,
                        seed=params.seed)
    if cfg.reference:
        reference = summarise({n: results[n] for n in cfg.reference}, victims=victims, grid=grid,
                              bound_l2=bound_l2, seed=params.seed)
        metrics["reference"] = {n: reference[n] for n in cfg.reference}
    sanity = run_sanity_checks(model=model, x=victims.x, labels=victims.labels_on(device), results=results,
                               epsilons=grid, batch_size=batch, bounded=bounded, bound=bound_l2,
                               target_fooling_rate=cfg.target_fooling_rate)
    for check, ok in sanity.items():
        print(f"{stage}: sanity {check}: {'pass' if ok else 'FAIL'}", flush=True)
    model_correct = test_predictions[rows] == victims.labels
    metrics.update(sanity=sanity, n_victims=len(rows), n_victims_requested=cfg.n_victims, bound=bound_l2,
                   victims_misclassified=int((~model_correct).sum()))
    curves = {n: np.stack([grid, robustness_curve(l2=r.l2, success=r.success, epsilons=grid)], axis=1)
              for n, r in results.items()}
    out = {"model_correct": model_correct, "test_predictions": test_predictions, "test_labels": test.y.numpy()}
    for n, r in results.items():
        out[f"{n}_l2"], out[f"{n}_success"] = r.l2, r.success
        out[f"{n}_adv"] = r.adv  # every victim's adversarial (the input where it failed), for re-checking
    study = {n: results[n] for n in cfg.attacks}
    return ModeRun(metrics=metrics, curves=curves, results=out,
                   examples=examples(study, victims=victims, n=cfg.n_examples, class_names=meta["class_names"]))


@dataclass
class Victims:
    """The attacked test clips: rows of the test split, labels, targets and inputs ``(N, 1, H, W)``."""

    rows: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    x: torch.Tensor

    def labels_on(self, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(self.labels).to(device)

    def targets_on(self, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(self.targets).to(device)


def search_all(*, params: Params, stage: str, model: torch.nn.Module, victims: Victims, batch: int,
               bound: float | None, pool: ReaderPool, resume: ResumeFolder | None) -> dict[str, BudgetResult]:
    """The budget search of every attack of ``params.attack.attacks`` and ``params.attack.reference``, each
    resumed from ``resume`` when saved there and saved there after every rung."""
    cfg, device = params.attack, victims.x.device
    results: dict[str, BudgetResult] = {}
    for name in (*cfg.attacks, *cfg.reference):
        n_levels = len(cfg.ladders[name])
        saved, on_rung = None, None
        if resume is not None:
            saved = resume.load(state_file(name), lambda path: read_search_state(
                path, name=name, shape=tuple(victims.x.shape), n_levels=n_levels),
                then=f"{name} starts from its first rung")
            on_rung = functools.partial(_save_state, resume)
        if saved is not None:
            print(f"{stage}: {name} resumes after rung {saved.result.level}/{n_levels}"
                  f"{' (finished)' if saved.finished else ''}", flush=True)
        r = results[name] = budget_search(
            name=name, model=model, x=victims.x, labels=victims.labels_on(device),
            targets=victims.targets_on(device), ladder=list(cfg.ladders[name]),
            target_fooling_rate=cfg.target_fooling_rate, batch_size=batch, bound=bound, amp=cfg.amp,
            starting_pool=pool, seed=attack_seed(seed=params.seed, name=name), resume=saved, on_rung=on_rung,
        )
        print(f"{stage}: {name} FR {r.fooling_rate:.2f} at level {r.level}/{r.n_levels} in {r.seconds:.1f} s",
              flush=True)
    return results


def _save_state(resume: ResumeFolder, state: SearchState) -> None:
    resume.save(state_file(state.result.name), lambda fh: write_search_state(fh, state))


def summarise(results: dict[str, BudgetResult], *, victims: Victims, grid: np.ndarray, bound_l2: float,
              seed: int) -> dict:
    """Per-attack metrics (:func:`~advaudio.evaluation.metrics.attack_summary`, level, cost) and their mean
    over the attacks that have each key (size means are missing where nothing succeeded; the intervals of
    single attacks and the counts are not averaged)."""
    xn = victims.x.cpu().numpy()
    metrics: dict = {}
    for name, r in results.items():
        m = attack_summary(x=xn, l2=r.l2, success=r.success, epsilons=grid, bound=bound_l2, seed=seed)
        m.update(level=r.level, n_levels=r.n_levels, seconds=r.seconds, gradient_calls=r.gradient_calls,
                 forward_calls=r.forward_calls)
        if r.black_box:
            m["queries"] = r.queries
        metrics[name] = m
    counts = {"gradient_calls", "forward_calls", "queries"}
    keys = sorted(k for k in set().union(*(set(m) for m in metrics.values())) - counts if "_ci_" not in k)
    metrics["mean"] = {k: float(np.mean([metrics[a][k] for a in results if k in metrics[a]])) for k in keys}
    return metrics


def examples(results: dict[str, BudgetResult], *, victims: Victims, n: int, class_names: list[str]) -> dict:
    """The first ``n`` victims with every attack's adversarial and its norm (for the figures)."""
    k = min(n, len(victims.rows))
    out = {"x": victims.x[:k].cpu().numpy(), "labels": victims.labels[:k], "targets": victims.targets[:k],
           "class_names": np.array(list(class_names))}
    for name, r in results.items():
        out[f"{name}_adv"], out[f"{name}_l2"] = r.adv[:k], r.l2[:k]
    return out


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
