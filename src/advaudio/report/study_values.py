"""The study's published Tables I-III, typed once.

Source: R. Alfonso Sallo, M. Esmaeilpour and P. Cardinal, "Adversarially Training for Audio Classifiers",
25th International Conference on Pattern Recognition (ICPR 2020), arXiv:2008.11618, Tables I, II and III.

Rows are (dataset, representation); the values in each row follow the study's column order
(GoogLeNet, AlexNet, ResNet-18, ResNet-34, ResNet-56, VGG-16), i.e. :data:`advaudio.report.layout.MODELS`.
Units are the study's: Table I accuracy and drop in percent / percentage points, Table II in percent
(the study calls it "average AUC%"), Table III a plain ratio.
"""

from __future__ import annotations

from advaudio.report.layout import MODELS

_Row = tuple[float, float, float, float, float, float]

# Table I: (accuracy %, drop in points after FGSM training) per model.
_TABLE_I: dict[tuple[str, str], tuple[tuple[float, float], ...]] = {
    ("esc50", "stft"): (
        (67.83, 6.89), (64.32, 10.91), (66.85, 12.13),
        (67.21, 14.43), (69.77, 9.29), (68.94, 8.32),
    ),
    ("esc50", "dwt"): (
        (70.42, 8.42), (65.39, 11.23), (67.06, 15.71),
        (67.55, 18.76), (71.56, 11.09), (71.43, 16.28),
    ),
    ("esc50", "stft_tonnetz"): (
        (70.11, 24.09), (64.21, 23.76), (67.62, 19.48),
        (66.75, 23.31), (70.22, 25.19), (70.18, 23.68),
    ),
    ("esc50", "dwt_tonnetz"): (
        (68.76, 19.07), (68.31, 18.53), (68.49, 24.27),
        (67.15, 21.56), (71.79, 18.21), (68.37, 18.73),
    ),
    ("urbansound8k", "stft"): (
        (88.32, 10.35), (86.07, 21.43), (88.24, 14.94),
        (88.61, 9.19), (88.77, 23.06), (87.93, 14.66),
    ),
    ("urbansound8k", "dwt"): (
        (90.10, 16.35), (87.51, 19.59), (88.07, 15.08),
        (88.38, 19.04), (90.14, 15.49), (90.11, 16.35),
    ),
    ("urbansound8k", "stft_tonnetz"): (
        (88.44, 25.77), (86.81, 22.05), (88.13, 17.64),
        (88.38, 26.42), (89.41, 20.73), (89.42, 21.38),
    ),
    ("urbansound8k", "dwt_tonnetz"): (
        (89.32, 16.83), (87.34, 20.41), (88.76, 29.12),
        (89.80, 27.45), (91.36, 26.08), (89.97, 24.56),
    ),
}

# Table II: fooling rate (%) of the adversarially trained models with ||eps||_2 <= 3.
_TABLE_II: dict[tuple[str, str], _Row] = {
    ("esc50", "stft"): (53.12, 50.97, 51.13, 55.31, 53.87, 51.05),
    ("esc50", "dwt"): (55.68, 51.03, 52.56, 54.18, 52.26, 52.23),
    ("esc50", "stft_tonnetz"): (56.18, 50.46, 53.10, 55.29, 54.19, 52.82),
    ("esc50", "dwt_tonnetz"): (55.74, 49.33, 54.87, 53.77, 50.42, 51.37),
    ("urbansound8k", "stft"): (56.09, 53.24, 54.08, 55.91, 57.30, 54.35),
    ("urbansound8k", "dwt"): (58.98, 51.92, 53.59, 54.40, 55.86, 53.66),
    ("urbansound8k", "stft_tonnetz"): (55.80, 50.71, 52.75, 51.02, 54.11, 52.39),
    ("urbansound8k", "dwt_tonnetz"): (58.46, 52.23, 55.13, 56.81, 55.38, 55.26),
}

# Table III: eps_r = eps_a / eps_o (Eq. 15).
_TABLE_III: dict[tuple[str, str], _Row] = {
    ("esc50", "stft"): (1.412, 1.631, 1.897, 2.154, 2.312, 2.107),
    ("esc50", "dwt"): (1.562, 1.509, 1.741, 1.982, 1.976, 2.307),
    ("esc50", "stft_tonnetz"): (1.804, 1.918, 2.003, 2.161, 2.095, 1.674),
    ("esc50", "dwt_tonnetz"): (2.014, 2.336, 1.788, 1.903, 2.609, 2.230),
    ("urbansound8k", "stft"): (1.562, 1.903, 2.439, 1.372, 1.991, 1.703),
    ("urbansound8k", "dwt"): (2.154, 2.287, 2.764, 1.644, 2.892, 1.789),
    ("urbansound8k", "stft_tonnetz"): (2.231, 2.108, 1.981, 2.003, 1.401, 2.308),
    ("urbansound8k", "dwt_tonnetz"): (1.606, 2.199, 2.405, 1.604, 2.501, 1.702),
}

PUBLISHED_DATASETS: tuple[str, ...] = ("esc50", "urbansound8k")


def published_cell(*, dataset: str, representation: str, model: str) -> dict[str, float] | None:
    """The study's published values for one cell of the grid.

    Returns
    -------
    dict or None
        ``{"accuracy": %, "accuracy_drop": points, "bounded_fooling_rate": %, "eps_ratio": ratio}``, or
        ``None`` when the study has no such cell (e.g. the synthetic dataset or an unknown model).
    """
    key = (dataset, representation)
    if key not in _TABLE_I or model not in MODELS:
        return None
    i = MODELS.index(model)
    accuracy, drop = _TABLE_I[key][i]
    return {
        "accuracy": accuracy,
        "accuracy_drop": drop,
        "bounded_fooling_rate": _TABLE_II[key][i],
        "eps_ratio": _TABLE_III[key][i],
    }
