"""Adversarial retraining, Eq. 14 of the study (after Goodfellow et al. 2015,
https://arxiv.org/abs/1412.6572):

    J'(x, l, w) = alpha * J(x, l, w) + (1 - alpha) * J(x', l, w),   x' = clip(x + eps * sign(grad_x J))

``fgsm_retrain.method: pgd`` crafts x' instead with Madry et al.'s PGD (2018, https://arxiv.org/abs/1706.06083):
a uniform random start in the L-infinity ball of radius eps, then ``pgd_steps`` signed-gradient steps of
``pgd_rel_stepsize * eps``, each projected back onto the ball and [0, 1] (foolbox's
``LinfProjectedGradientDescentAttack``, :func:`craft_pgd`). Single-step FGSM training is known to overfit to
its own attack and to mask gradients; PGD training is the standard check of whether robustness is real. The
random start draws from torch's global generator, seeded with ``seed`` before retraining.

The study trains on J(x', l, w) alone (alpha = 0), and so does our default: it is the setting whose
numbers Tables I-III report, and it gives the largest robustness gain (the drop in clean accuracy it
costs is part of what Table I shows). alpha = 0.5, Goodfellow's choice, keeps more clean accuracy.

x' is crafted on the fly from the current weights with foolbox's ``LinfFastGradientAttack`` without random
start (:func:`craft_fgsm`): the registered ``fgsm`` attack, not taken from the registry, whose import would
make retraining depend on every attack's code. It is crafted in the mode the training loop set (train mode:
dropout stays on, as in Goodfellow et al.) except for BatchNorm, which is frozen while crafting
(:func:`frozen_batchnorm`): in train mode it would fold the clean batch into its running statistics and
normalise x with x's own batch statistics, so at alpha = 0 the running statistics would be half clean data
although the loss never sees x.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator

import foolbox as fb
import torch
import torch.nn.functional as F
from torch import nn

from advaudio.config import FgsmRetrainConfig, Params, resolve_device
from advaudio.models import build_model
from advaudio.models.checkpoint import make_config
from advaudio.features.store import FeatureReaders
from advaudio.training.data import train_val_rows, validation_folds
from advaudio.training.loop import BatchLoss, EpochCallback, evaluate, fit, seed_everything


@contextlib.contextmanager
def frozen_batchnorm(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model``'s BatchNorm modules are in eval mode and its parameters need no gradient.

    BatchNorm then normalises with its running statistics and updates none of them; every other module
    (dropout, ...) keeps the mode the caller set. Parameters are excluded from autograd so that crafting
    neither accumulates into their ``.grad`` nor pays for weight gradients. Both are restored on exit.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in norms]
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for m in norms:
            m.eval()
        for p in params:
            p.requires_grad_(False)
        yield model
    finally:
        for m, mode in zip(norms, modes):
            m.train(mode)
        for p in params:
            p.requires_grad_(True)


def craft_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilon: float) -> torch.Tensor:
    """x' = clip(x + epsilon * sign(grad_x CE(model(x), y)), 0, 1) by foolbox's ``LinfFastGradientAttack``.

    Crafted under :func:`frozen_batchnorm`; other modules keep their mode. Calls the attack's ``run`` (one
    forward and one backward pass), not foolbox's ``__call__``, which would add a forward pass to report
    success. Returns x', detached.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits; inputs in [0, 1].
    x : torch.Tensor
        Inputs inside [0, 1].
    y : torch.Tensor
        True labels.
    epsilon : float
        L-infinity step in input units.
    """
    with frozen_batchnorm(model):
        fmodel = _foolbox_model(model, device=x.device)
        attack = fb.attacks.LinfFastGradientAttack(random_start=False)
        x_adv = attack.run(fmodel, x.detach(), fb.criteria.Misclassification(y), epsilon=epsilon)
    return x_adv.detach()


def _foolbox_model(model: nn.Module, *, device: torch.device) -> fb.PyTorchModel:
    """``fb.PyTorchModel`` on [0, 1] around ``model`` as it is, train mode included, without foolbox's warning.

    The model is in train mode on purpose (dropout as the training loop set it; BatchNorm frozen by the
    caller), so foolbox's "model is in training mode" warning is expected noise. foolbox raises it under its
    own ``simplefilter("always")``, which no filter of ours overrides, so it is recorded here and dropped.
    """
    with warnings.catch_warnings(record=True):
        return fb.PyTorchModel(model, bounds=(0.0, 1.0), device=device)


def craft_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilon: float, steps: int,
              rel_stepsize: float) -> torch.Tensor:
    """x' by L-infinity PGD with a random start (foolbox's ``LinfProjectedGradientDescentAttack``).

    Crafted under :func:`frozen_batchnorm`, like :func:`craft_fgsm`; ``steps`` steps of
    ``rel_stepsize * epsilon``; the result lies within ``epsilon`` of ``x`` (L-infinity) and inside [0, 1].
    Returns x', detached.
    """
    with frozen_batchnorm(model):
        fmodel = _foolbox_model(model, device=x.device)
        attack = fb.attacks.LinfProjectedGradientDescentAttack(rel_stepsize=rel_stepsize, steps=steps,
                                                               random_start=True)
        x_adv = attack.run(fmodel, x.detach(), fb.criteria.Misclassification(y), epsilon=epsilon)
    return x_adv.detach()


Craft = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def crafter(config: FgsmRetrainConfig) -> Craft:
    """The x' of ``config.method``: :func:`craft_fgsm` or :func:`craft_pgd` with the block's settings."""
    if config.method == "pgd":
        return partial(craft_pgd, epsilon=config.epsilon, steps=config.pgd_steps,
                       rel_stepsize=config.pgd_rel_stepsize)
    return partial(craft_fgsm, epsilon=config.epsilon)


def retrain_loss(*, alpha: float, craft: Craft) -> BatchLoss:
    """Batch loss of Eq. 14 with x' = ``craft(model, x, y)``; returns ``(loss, logits on x')`` (or on x when
    ``alpha == 1``, where nothing is crafted)."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if alpha >= 1.0:
            logits = model(x)
            return F.cross_entropy(logits, y), logits
        x_adv = craft(model, x, y)
        logits_adv = model(x_adv)
        total = (1.0 - alpha) * F.cross_entropy(logits_adv, y)
        if alpha > 0.0:
            total = total + alpha * F.cross_entropy(model(x), y)
        return total, logits_adv

    return loss


@dataclass
class RetrainOutcome:
    """The retrained model, its checkpoint config and ``metrics/fgsm_retrain.json``."""

    model: nn.Module
    config: dict[str, Any]
    metrics: dict[str, float | int]


def fgsm_retrain(
    *,
    params: Params,
    features: FeatureReaders,
    clean_model: nn.Module,
    clean_config: dict[str, Any],
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    alpha: float | None = None,
) -> RetrainOutcome:
    """Retrain with Eq. 14 (x' by ``fgsm_retrain.method``) on the same training rows as the clean model
    (validation fold held out).

    ``alpha`` overrides ``fgsm_retrain.alpha``; ``alpha=1`` is the ``clean_finetune`` control: the same
    epochs, rate and rows with the clean loss only, which tells how much of the accuracy change is extra
    training rather than adversarial training.

    Starts from ``clean_model``'s weights, or from a fresh network when ``fgsm_retrain.from_scratch``;
    runs ``fgsm_retrain.epochs`` epochs at ``fgsm_retrain.lr_scale`` times the model's training rate, with
    the optimizer, schedule, batch size and weight decay it was trained with (``train`` and
    ``train.by_model``), and keeps the last weights (no early stopping: clean validation accuracy
    would favour the least robust epoch). Training batches come from memory when the training rows are
    small (:meth:`~advaudio.features.reader.SplitReader.cached`), else streamed; the test split is read in
    batches.
    """
    cfg = params.fgsm_retrain
    device = resolve_device(params.device)
    train_cfg = params.train.for_model(clean_config["model"])
    batch = max(train_cfg.batch_size, 256)
    _, clean_acc = evaluate(clean_model.to(device), features.test, batch_size=batch, device=device)
    seed_everything(params.seed)
    model = build_model(clean_config["model"], n_classes=clean_config["n_classes"],
                        input_shape=clean_config["input_shape"], **clean_config["model_kwargs"])
    if not cfg.from_scratch:
        model.load_state_dict(clean_model.state_dict())
    train_rows, _ = train_val_rows(features.train, val_fold=validation_folds(features, params=params)[0])
    result = fit(
        model, train=features.train.subset(train_rows).cached(), val=None, config=train_cfg, seed=params.seed,
        device=device, epochs=cfg.epochs, lr=cfg.lr_scale * train_cfg.lr,
        batch_loss=retrain_loss(alpha=cfg.alpha if alpha is None else alpha, craft=crafter(cfg)), on_epoch=on_epoch,
        progress=progress,
    )
    _, acc = evaluate(result.model, features.test, batch_size=batch, device=device)
    metrics = {
        "test_accuracy": float(acc),
        "clean_test_accuracy": float(clean_acc),
        "accuracy_drop_points": float(100.0 * (clean_acc - acc)),
        "epochs": int(result.epochs),
        "seconds": float(result.seconds),
        "images_per_second": float(result.images_per_second),
        "n_train": int(len(train_rows)),
    }
    if clean_acc > 0:
        metrics["accuracy_drop_relative"] = float((clean_acc - acc) / clean_acc)
    config = make_config(**{**clean_config, "params": dataclasses.asdict(params)})
    return RetrainOutcome(model=result.model, config=config, metrics=metrics)
