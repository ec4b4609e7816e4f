"""Projected cost of one cell (dataset x representation x model) from measured per-item costs.

Pure arithmetic over :mod:`advaudio.plan.measure`'s numbers: seconds per stage, peak RAM, peak device memory
and disk. Attack stages cost (gradient evaluations x seconds per gradient + forward-only evaluations x seconds
per forward) per victim; the number of evaluations comes from the last run of the same configuration when
``metrics/attack_<mode>.json`` holds one (``calibrated``), else from the ladders in full, every victim on every
rung (an upper bound: searches stop early).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advaudio.attacks import ATTACKS
from advaudio.attacks.common import rung_setting
from advaudio.config import Params
from advaudio.data.clip_shards import STORAGE_DTYPE
from advaudio.plan.facts import DatasetFacts
from advaudio.plan.measure import ClipCosts, ModelCosts

SANITY_GRADIENTS = 3 * 10 + 3 + 1  # fresh BIM-b at three epsilons x 10 steps, FGSM at three, input gradients
FLOAT32 = 4


@dataclass(frozen=True)
class AttackCalls:
    """Evaluations one attack stage makes per victim, and whether they were measured on a previous run."""

    gradients: float
    forwards: float  # forward-only
    calibrated: bool


@dataclass
class CellPlan:
    """Projected seconds per stage, peak memory and disk of one cell."""

    seconds: dict[str, float] = field(default_factory=dict)
    peak_ram_bytes: int = 0
    peak_device_bytes: int = 0
    disk_parts: dict[str, int] = field(default_factory=dict)  # audio, features, checkpoints, attacks -> bytes
    cache_links: bool = False  # DVC's cache links outputs into the workspace rather than copying them
    calibrated_attacks: bool = False

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))

    @property
    def disk_bytes(self) -> int:
        """The cell's outputs in the workspace plus their DVC cache copy (one copy when the cache links)."""
        return (1 if self.cache_links else 2) * sum(self.disk_parts.values())


SHARED_PARTS = {"audio": ("dataset",), "features": ("dataset", "representation")}  # the cells that share a part


def grid_disk_bytes(cells: dict[tuple[str, str, str], CellPlan]) -> int:
    """Disk for a grid of cells run as DVC experiments: the cache holds each distinct output once (audio per
    dataset, features per dataset and representation, checkpoints and attack outputs per cell) and the workspace
    holds one cell at a time (a copy of the largest unless the cache links)."""
    if not cells:
        return 0
    fields = ("dataset", "representation", "model")
    distinct: dict[tuple, int] = {}
    for key, plan in cells.items():
        named = dict(zip(fields, key))
        for part, size in plan.disk_parts.items():
            owner = tuple(named[f] for f in SHARED_PARTS.get(part, fields))
            distinct[(part, owner)] = size
    cache = sum(distinct.values())
    links = all(plan.cache_links for plan in cells.values())
    return cache + (0 if links else max(sum(plan.disk_parts.values()) for plan in cells.values()))


def ladder_calls(*, params: Params, bounded: bool, n_classes: int, n_features: int) -> AttackCalls:
    """Upper bound on the evaluations per victim of one attack stage (``bounded``: within the L2 bound): every
    rung of every ladder in full."""
    grads = fwds = 0
    bound = params.attack.bound if bounded else None
    for name in (*params.attack.attacks, *params.attack.reference):
        cls = ATTACKS.get(name)
        for rung in params.attack.ladders[name]:
            rung = dict(rung)
            if bound is not None:
                rung = cls.bounded(rung, bound=bound, n_features=n_features)
            rung.pop("epsilon", None)
            g, f = cls.max_calls(rung, n_classes=n_classes, n_features=n_features)
            grads, fwds = grads + g, fwds + f + 2  # + foolbox's success check and the verifying forward pass
    return AttackCalls(gradients=float(grads), forwards=float(fwds), calibrated=False)


def measured_calls(*, metrics: dict[str, Any], params: Params) -> AttackCalls | None:
    """Evaluations per victim of a previous run of the stage (``metrics/attack_<mode>.json``), or ``None`` when
    that run does not match the configured attacks and ladders (or predates the counters)."""
    n = metrics.get("n_victims")
    if not isinstance(n, (int, float)) or n <= 0:
        return None
    grads = fwds = 0.0
    reference = metrics.get("reference") if isinstance(metrics.get("reference"), dict) else {}
    for name in (*params.attack.attacks, *params.attack.reference):
        entry = metrics.get(name, reference.get(name))
        if not isinstance(entry, dict) or "forward_calls" not in entry:
            return None
        if int(entry.get("n_levels", -1)) != len(params.attack.ladders[name]):
            return None
        grads += float(entry.get("gradient_calls", 0))
        fwds += float(entry["forward_calls"]) - float(entry.get("gradient_calls", 0))
    return AttackCalls(gradients=grads / int(n), forwards=fwds / int(n), calibrated=True)


def project_cell(
    *,
    params: Params,
    model: str,
    facts: DatasetFacts,
    clip: ClipCosts,
    net: ModelCosts,
    n_features: int,
    train_epochs: int | None,
    attack_calls: dict[str, AttackCalls],
    base_ram_bytes: int,
    device_is_cuda: bool,
    workers: int,
    cache_links: bool = False,
) -> CellPlan:
    """Project one cell. ``train_epochs``: epochs the last run trained (early stopping), else the configured
    maximum; ``attack_calls``: per attack mode; ``base_ram_bytes``: the RSS of a process with torch and the model
    loaded; ``workers``: processes of the augment and spectrogram stages; ``cache_links``: DVC's cache links
    outputs into the workspace (``cache.type`` hardlink or symlink), so they are stored once, not twice."""
    plan = CellPlan(calibrated_attacks=all(c.calibrated for c in attack_calls.values()), cache_links=cache_links)
    cfg = params.train.for_model(model)
    n_train_clips = facts.n_clips - facts.n_test
    plan.seconds["augment"] = n_train_clips * len(params.augment.scales) * clip.pitch_shift_seconds / workers
    plan.seconds["spectrogram"] = (facts.n_train_rows + facts.n_test) * clip.feature_seconds / workers
    if facts.name == "synth":
        plan.seconds["synth"] = facts.n_clips * clip.synth_seconds
    epochs = train_epochs or cfg.epochs
    models = facts.pool_folds if params.train.cross_validate else 1
    fit_rows = facts.n_train_rows * (1 - 1 / facts.pool_folds)  # the validation fold is held out
    per_epoch = fit_rows * net.train_seconds + n_train_clips / facts.pool_folds * net.forward_seconds
    plan.seconds["train"] = models * epochs * per_epoch + facts.n_test * net.forward_seconds
    retrain = params.fgsm_retrain.epochs * fit_rows
    plan.seconds["fgsm_retrain"] = retrain * (net.gradient_seconds + net.train_seconds) + 2 * facts.n_test * net.forward_seconds
    plan.seconds["clean_finetune"] = retrain * net.train_seconds + 2 * facts.n_test * net.forward_seconds
    # PGD crafts x' with pgd_steps gradients per training row where FGSM takes one
    plan.seconds["pgd_retrain"] = (retrain * (params.fgsm_retrain.pgd_steps * net.gradient_seconds + net.train_seconds)
                                   + 2 * facts.n_test * net.forward_seconds)
    victims = params.attack.n_victims
    pia = "pia" in params.attack.attacks
    for mode, calls in attack_calls.items():
        per_victim = (calls.gradients + SANITY_GRADIENTS) * net.gradient_seconds + calls.forwards * net.forward_seconds
        # the stage classifies the test split once to pick victims; PIA's search classifies it once more as its
        # starting pool (once per search: evaluation/budget.py), which measured counts already include
        test_passes = 1 + int(pia and not calls.calibrated)
        plan.seconds[f"attack@{mode}"] = victims * per_victim + test_passes * facts.n_test * net.forward_seconds
    sample_bytes = n_features * FLOAT32
    batch = net.batch_size
    activations = batch * net.backward_bytes
    # the attack stages stream the test split (evaluation/attack_run.py): they hold the victims, the batch
    # being read and the one prefetched, not the split
    test_reads = (victims + 2 * _read_batch(params, batch)) * sample_bytes
    results = (len(params.attack.attacks) + len(params.attack.reference)) * victims * sample_bytes
    plan.peak_device_bytes = (4 * net.weight_bytes + activations + test_reads + 2 * results) if device_is_cuda else 0
    plan.peak_ram_bytes = base_ram_bytes + (0 if device_is_cuda else activations) + test_reads + 2 * results
    plan.disk_parts = {
        "audio": (facts.n_train_rows + facts.n_test) * facts.clip_samples * np.dtype(STORAGE_DTYPE).itemsize,
        "features": (facts.n_train_rows + facts.n_test) * clip.stored_bytes,
        # model.pt, retrained.pt, retrained_pgd.pt (+ optimizer state in the resume folder)
        "checkpoints": 3 * net.weight_bytes * 3,
        "attacks": len(attack_calls) * results * 2,  # results.npz plus the resume states while a stage runs
    }
    return plan


def _read_batch(params: Params, batch: int) -> int:
    """Test images per read of an attack stage: ``batch``, or PIA's starting-pool batch (``batch`` rounded up
    to the oracle's forward chunk, :class:`advaudio.attacks.pool.StartingPool`) when larger."""
    if "pia" not in params.attack.attacks:
        return batch
    rungs = params.attack.ladders.get("pia") or [{}]
    chunk = max(int(rung_setting(ATTACKS.get("pia"), rung, "chunk")) for rung in rungs)
    return max(batch, math.ceil(batch / chunk) * chunk)


def hours(seconds: float) -> float:
    """Seconds in hours."""
    return seconds / 3600.0


def gib(n_bytes: float) -> float:
    """Bytes in GiB."""
    return n_bytes / float(1 << 30)


def fits(plan: CellPlan, *, ram_bytes: int, device_bytes: int | None, disk_bytes: int) -> dict[str, bool]:
    """Whether the plan's peaks fit the machine (``device_bytes`` None: no accelerator)."""
    return {
        "ram": plan.peak_ram_bytes <= ram_bytes,
        "device": device_bytes is None or plan.peak_device_bytes <= device_bytes,
        "disk": plan.disk_bytes <= disk_bytes,
    }
