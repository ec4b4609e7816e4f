"""The training loop: mini-batches in a seeded per-epoch order read through a split reader
(:mod:`advaudio.features.reader`: streamed from the shards, or from memory for a small split), optional CUDA
autocast and channels_last, early stopping on validation accuracy with the best weights kept, a per-epoch
callback (DVCLive) and per-epoch resume state."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from advaudio.config import TrainConfig
from advaudio.features.reader import SplitReader
from advaudio.models.predict import predict_batches

BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
EpochCallback = Callable[[dict[str, float]], None]


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA) and numpy global RNG states as tensors and plain types (a resume state holds them)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain training loss; returns ``(loss, logits)``."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


@dataclass
class FitResult:
    """What :func:`fit` returns; ``model`` holds the best-validation (or last) weights."""

    model: nn.Module
    best_val_accuracy: float | None
    epochs: int
    seconds: float
    images_per_second: float
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def make_optimizer(model: nn.Module, *, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum 0.9, Nesterov) over the model's parameters."""
    params = model.parameters()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, *, name: str, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: cosine to 0 over ``epochs``, step (x0.1 at 1/2 and 3/4), or constant."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        milestones = sorted({max(1, epochs // 2), max(1, (3 * epochs) // 4)})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda _: 1.0)
    raise ValueError(f"unknown schedule {name!r}")


def autocast_for(device: torch.device, *, enabled: bool) -> tuple[Any, torch.amp.GradScaler]:
    """Autocast context and grad scaler: bf16 (or fp16 + scaling) on CUDA, nothing on CPU."""
    if device.type != "cuda" or not enabled:
        return nullcontext(), torch.amp.GradScaler("cuda", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    ctx = torch.autocast(device_type="cuda", dtype=dtype)
    return ctx, torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


def _to_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def evaluate_logits(
    model: nn.Module, data: SplitReader, *, batch_size: int, device: str | torch.device, channels_last: bool = False,
) -> torch.Tensor:
    """Logits (N, K), float32 on the CPU, of ``model`` (eval mode) on every row of ``data``, read in batches."""
    batches = (x for x, _ in data.batches(batch_size=batch_size, device=device))
    return predict_batches(model, batches, channels_last=channels_last)


def evaluate(
    model: nn.Module, data: SplitReader, *, batch_size: int, device: str | torch.device, channels_last: bool = False,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) of ``model`` on every row of ``data``, read in batches."""
    logits = evaluate_logits(model, data, batch_size=batch_size, device=device, channels_last=channels_last)
    loss = F.cross_entropy(logits, data.y).item()
    accuracy = (logits.argmax(1) == data.y).float().mean().item()
    return loss, accuracy


def fit(
    model: nn.Module,
    *,
    train: SplitReader,
    val: SplitReader | None,
    config: TrainConfig,
    seed: int,
    device: str | torch.device,
    epochs: int | None = None,
    lr: float | None = None,
    batch_loss: BatchLoss = cross_entropy_loss,
    start: dict[str, Any] | None = None,
    on_state: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``model`` in place and return it with the best validation weights loaded.

    Parameters
    ----------
    model : nn.Module
        Freshly built (or loaded) network returning logits.
    train : SplitReader
        The training rows (e.g. ``reader.subset(rows)``, ``.cached()`` for a small split); each batch is
        read onto ``device`` when needed.
    val : SplitReader or None
        Validation data for early stopping (``config.patience``); None trains all epochs, keeps the last.
    config : TrainConfig
        optimizer, lr, schedule, epochs, batch_size, weight_decay, patience, channels_last, amp.
    seed : int
        Seeds the batch order of every epoch (``seed`` and the epoch number), so resuming is exact.
    epochs, lr : optional
        Override ``config.epochs`` / ``config.lr`` (FGSM retraining has its own).
    batch_loss : callable
        ``(model, xb, yb) -> (loss, logits)``; the default is cross-entropy.
    start : dict, optional
        A state ``on_state`` got after an epoch of an interrupted run of the same training: the training goes
        on after that epoch, and ends as the uninterrupted run would (same batches, same RNG draws).
    on_state : callable, optional
        Called after every epoch with the state to continue from (model, optimizer, scheduler, grad scaler,
        RNG states, epoch, best weights, history), e.g. to save it.
    on_epoch : callable, optional
        Called after every epoch with that epoch's numbers (epoch, losses, accuracies, lr, ...).
    progress : bool
        Show a tqdm bar per epoch (only when stderr is a terminal).
    """
    device = torch.device(device)
    if device.type == "cpu":
        # Late in training, Adam's second moments and small gradients go subnormal; x86 CPUs then slow
        # down by up to 10x. Flushing them to zero changes nothing measurable in the result.
        torch.set_flush_denormal(True)
    n_epochs = int(epochs if epochs is not None else config.epochs)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    optimizer = make_optimizer(model, name=config.optimizer, lr=lr if lr is not None else config.lr,
                               weight_decay=config.weight_decay)
    scheduler = make_scheduler(optimizer, name=config.schedule, epochs=n_epochs)
    autocast, scaler = autocast_for(device, enabled=config.amp)
    n, bs = len(train), config.batch_size
    n_batches = max(1, -(-n // bs))

    start_epoch, best_acc, best_state, bad_epochs, history, train_seconds, images = 0, None, None, 0, [], 0.0, 0
    if start is not None:
        model.load_state_dict(start["model"])
        optimizer.load_state_dict(start["optimizer"])
        scheduler.load_state_dict(start["scheduler"])
        scaler.load_state_dict(start["scaler"])
        set_rng_state(start["rng"])
        start_epoch, best_acc, bad_epochs = start["epoch"], start["best_acc"], start["bad_epochs"]
        best_state, history = start["best_state"], list(start["history"])
        train_seconds, images = start["train_seconds"], start["images"]

    epoch = start_epoch
    for epoch in range(start_epoch, n_epochs):
        if best_acc is not None and bad_epochs >= config.patience:
            break
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).numpy()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        bar = tqdm(train.batches(order, batch_size=bs, device=device), total=n_batches,
                   desc=f"epoch {epoch + 1}/{n_epochs}", leave=False,
                   disable=None if progress else True)  # None: no bar when stderr is not a terminal
        for xb, yb in bar:
            xb = xb.contiguous(memory_format=memory_format)
            with autocast:
                loss, logits = batch_loss(model, xb, yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == yb).sum()
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds
        images += n
        lr_now = optimizer.param_groups[0]["lr"]
        scheduler.step()
        record = {"epoch": epoch + 1, "train_loss": loss_sum.item() / n, "train_accuracy": correct.item() / n,
                  "lr": lr_now, "epoch_seconds": epoch_seconds, "images_per_second": n / epoch_seconds}
        if val is not None and len(val):
            val_loss, val_acc = evaluate(model, val, batch_size=max(bs, 256), device=device,
                                         channels_last=config.channels_last)
            record.update(val_loss=val_loss, val_accuracy=val_acc)
            if best_acc is None or val_acc > best_acc:
                best_acc, bad_epochs = val_acc, 0
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
        history.append(record)
        if on_state is not None:
            on_state({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
                      "epoch": epoch + 1, "best_acc": best_acc, "bad_epochs": bad_epochs, "best_state": best_state,
                      "history": history, "train_seconds": train_seconds, "images": images})
        if on_epoch is not None:
            on_epoch(record)
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(
        model=model.eval(),
        best_val_accuracy=best_acc,
        epochs=len(history),
        seconds=train_seconds,
        images_per_second=images / train_seconds if train_seconds > 0 else 0.0,
        history=history,
    )
