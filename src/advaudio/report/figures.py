"""Figures of the report: Figure 1 (original and adversarial representations), robustness curves, and the
grid's transfer heat maps.

Matplotlib runs headless (Agg); figures are written atomically as PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from advaudio.io import atomic_path  # noqa: E402


def pick_example(*, examples: dict[str, np.ndarray], attacks: list[str]) -> int:
    """Index of the saved example with the most successful attacks (finite ||delta||_2); first on ties."""
    n_ok = sum(np.isfinite(examples[f"{a}_l2"]).astype(int) for a in attacks)
    return int(np.argmax(n_ok))


def figure1(*, examples: dict[str, np.ndarray], attacks: list[str], path: str | Path, title: str = "") -> int:
    """Figure 1 of the study: one victim's representation and its adversarials, ||delta||_2 under each.

    Parameters
    ----------
    examples : dict of ndarray
        ``examples.npz`` arrays (see :func:`advaudio.report.inputs.read_examples`).
    attacks : list of str
        Attack names, one panel each after the original.
    path : str or Path
        The PNG to write.
    title : str
        Figure title (e.g. the configuration).

    Returns
    -------
    int
        The index of the example shown (-1 when no example was saved; the figure then says so).
    """
    if examples["x"].shape[0] == 0:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no adversarial examples were saved (attack.n_examples = 0)", ha="center", va="center")
        _save(fig, path)
        return -1
    i = pick_example(examples=examples, attacks=attacks)
    class_names = [str(c) for c in examples["class_names"]]
    label = class_names[int(examples["labels"][i])]
    target = class_names[int(examples["targets"][i])]
    panels = [("original", examples["x"][i, 0], f"label: {label}")]
    for a in attacks:
        l2 = float(examples[f"{a}_l2"][i])
        caption = f"||δ||₂ = {l2:.3f}" if math.isfinite(l2) else "attack failed"
        panels.append((a, examples[f"{a}_adv"][i, 0], caption))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.9), squeeze=False)
    for ax, (name, image, caption) in zip(axes[0], panels):
        ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=0.0, vmax=1.0)  # row 0 = lowest freq
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(caption, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}  (target of targeted attacks: {target})".strip(), fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return i


def robustness_curves(
    *,
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    bound: float,
    target_fooling_rate: float,
    path: str | Path,
) -> None:
    """FR(eps) per attack, one panel each, one line per model (e.g. original vs retrained).

    Parameters
    ----------
    curves : dict
        ``{attack: {series label: (epsilon, fooling_rate)}}``.
    bound : float
        The L2 bound the attack stages applied, drawn as a vertical line.
    target_fooling_rate : float
        Drawn as a horizontal line.
    path : str or Path
        The PNG to write.
    """
    attacks = list(curves)
    n_cols = min(3, len(attacks))
    n_rows = math.ceil(len(attacks) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.0 * n_cols, 3.0 * n_rows), squeeze=False)
    for ax, attack in zip(axes.flat, attacks):
        for label, (eps, fr) in curves[attack].items():
            ax.plot(eps, 100.0 * fr, label=label)
        ax.axvline(bound, color="grey", linestyle="--", linewidth=0.8)
        ax.axhline(100.0 * target_fooling_rate, color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(attack, fontsize=10)
        ax.set_xlabel("ε (||δ||₂)")
        ax.set_ylabel("fooling rate (%)")
        ax.set_ylim(-2, 102)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(attacks):]:
        ax.set_visible(False)
    fig.tight_layout()
    _save(fig, path)


def transfer_heatmaps(
    *,
    panels: dict[str, tuple[np.ndarray, np.ndarray]],
    labels: list[str],
    path: str | Path,
    title: str = "",
) -> None:
    """Transfer matrices as heat maps, one panel per attack: rows the source model, columns the target.

    Parameters
    ----------
    panels : dict
        ``{panel title: (rates, n)}``, both ``(M, M)``: the rate shown per entry (a fraction; NaN where n = 0)
        and its denominator, written in each square.
    labels : list of str
        The models, in row (and column) order.
    path : str or Path
        The PNG to write.
    title : str
        Figure title (e.g. the group and attack mode).
    """
    n_cols = max(1, min(3, len(panels)))
    n_rows = max(1, math.ceil(len(panels) / n_cols))
    size = 1.4 + 0.9 * len(labels)  # inches per panel: the squares and the model names beside them
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols + 1.0, size * n_rows + 0.6), squeeze=False,
                             layout="constrained")
    image = None
    for ax, (name, (rates, n)) in zip(axes.flat, panels.items()):
        image = ax.imshow(100.0 * rates, cmap="viridis", vmin=0.0, vmax=100.0)
        for i in range(rates.shape[0]):
            for j in range(rates.shape[1]):
                text = "–" if np.isnan(rates[i, j]) else f"{100.0 * rates[i, j]:.0f}"
                ax.text(j, i, f"{text}\nn={int(n[i, j])}", ha="center", va="center", fontsize=7,
                        color="black" if np.isnan(rates[i, j]) or rates[i, j] >= 0.5 else "white")  # viridis: dark low
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("target", fontsize=8)
        ax.set_ylabel("source", fontsize=8)
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="rate (%)")
    if title:
        fig.suptitle(title, fontsize=9)
    _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
