"""The study's table layout: row and column order, display labels and cell formats.

Tables I-III of the study have one row per dataset x representation and one column per model, in the
order below. Names are the params values (``model``, ``representation``, ``dataset``); labels are what the
study prints.
"""

from __future__ import annotations

import math

MODEL_LABELS: dict[str, str] = {
    "googlenet": "GoogLeNet",
    "alexnet": "AlexNet",
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet56": "ResNet-56",
    "vgg16": "VGG-16",
}
REPRESENTATION_LABELS: dict[str, str] = {
    "stft": "STFT",
    "dwt": "DWT",
    "stft_tonnetz": "STFT Tonnetz",
    "dwt_tonnetz": "DWT Tonnetz",
}
DATASET_LABELS: dict[str, str] = {
    "esc50": "ESC-50",
    "urbansound8k": "UrbanSound8K",
    "synth": "Synth",
}
MODELS: tuple[str, ...] = tuple(MODEL_LABELS)
REPRESENTATIONS: tuple[str, ...] = tuple(REPRESENTATION_LABELS)

EMPTY_CELL = "–"

# What each table shows, which summary key(s) feed it, and which direction the study bolds.
TABLE_TITLES: dict[str, str] = {
    "table1": "Table I: clean test accuracy (%) of the original model; in parentheses the drop "
    "(percentage points) after FGSM adversarial training",
    "table2": "Table II: fooling rate (%) of the adversarially trained model with ||delta||_2 <= bound, "
    "mean over the attacks",
    "table3": "Table III: eps_r = eps_a / eps_o (Eq. 15), mean over the attacks",
}
BEST_IS_HIGH: dict[str, bool] = {"table1": True, "table2": False, "table3": True}


def dataset_label(name: str) -> str:
    """Display label of a dataset (the name itself when the study has none)."""
    return DATASET_LABELS.get(name, name)


def model_label(name: str) -> str:
    """Display label of a model (the name itself when the study has none)."""
    return MODEL_LABELS.get(name, name)


def representation_label(name: str) -> str:
    """Display label of a representation (the name itself when the study has none)."""
    return REPRESENTATION_LABELS.get(name, name)


def _rounded(value: float, digits: int) -> float:
    # A difference of equal accuracies can be -1e-15; printed, it would read "-0.00". -0.0 + 0.0 is +0.0.
    return round(value, digits) + 0.0


def format_table1(*, accuracy_percent: float, drop_points: float) -> str:
    """Table I cell as the study prints it: ``"67.83, (06.89)"`` (a rise in accuracy shows as a negative drop)."""
    return f"{_rounded(accuracy_percent, 2):.2f}, ({_rounded(drop_points, 2):05.2f})"


def format_table2(*, fooling_rate_percent: float) -> str:
    """Table II cell: a percentage with two decimals."""
    return f"{_rounded(fooling_rate_percent, 2):.2f}"


def format_table3(*, eps_ratio: float) -> str:
    """Table III cell: a ratio with three decimals."""
    return f"{_rounded(eps_ratio, 3):.3f}"


def format_interval(low: float, high: float, *, percent: bool, digits: int) -> str:
    """A 95 % interval as ``"[low, high]"`` (fractions shown as percent when ``percent``)."""
    scale = 100.0 if percent else 1.0
    return f"[{_rounded(scale * low, digits):.{digits}f}, {_rounded(scale * high, digits):.{digits}f}]"


def format_p(value: float | None) -> str:
    """A p-value with three significant digits, starred when significant at 5 %; empty cell when absent."""
    if value is None or not math.isfinite(value):
        return EMPTY_CELL
    shown = "<0.001" if value < 0.001 else f"{value:.3g}"
    return f"{shown}{'*' if value < 0.05 else ''}"


def format_number(value: float | None, *, digits: int = 3, percent: bool = False) -> str:
    """Format an optional number for a report table; ``None`` and non-finite values give the empty cell."""
    if value is None or not math.isfinite(value):
        return EMPTY_CELL
    if percent:
        return f"{100.0 * value:.1f}"
    if digits == 0:
        return f"{value:.0f}"  # counts (gradient calls, queries) stay exact
    return f"{value:.{digits}g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"
