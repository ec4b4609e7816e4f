"""Transfer within one cell, the original and the retrained model: a gradient-masking check (docs/PROTOCOL.md
"Transfer within the cell").

The bounded attack stages attack both models on the same victims (``attack@original_bounded``,
``attack@retrained_bounded``). Each model's stored adversarials are classified by the other, which gives a 2 × 2
transfer matrix per attack (:mod:`advaudio.evaluation.transfer`). On the retrained model the transferred
adversarials are a black-box attack within the same bound. Carlini et al. (2019, "On evaluating adversarial
robustness", §5) list "black-box attacks do better than white-box ones" among the signs that gradients are
masked: so the retrained model is flagged when the best transferred attack fools more of its victims than the
best white-box attack on it, significantly (exact McNemar over the same victims, 5 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from advaudio.attacks import ATTACKS
from advaudio.errors import DataError
from advaudio.evaluation.stats import mcnemar_p, significant
from advaudio.evaluation.transfer import (ModelRun, Predictions, entry_hits, group_predictions, matrices_of,
                                          read_run)
from advaudio.evaluation.victims import load_victim

MODELS = ("original", "retrained")  # the matrix's order: the model each bounded attack stage attacked
SOURCE, TARGET = MODELS  # the masking check: the original's adversarials on the retrained model


@dataclass(frozen=True)
class MaskingCheck:
    """The retrained model's victims that it classifies correctly (``n``), fooled within the bound by the
    original's transferred adversarials (black box) and by the attacks on the retrained model itself (white box).

    ``transfer`` and ``white_box`` map every attack to its rate; the best of each (the first listed on a tie) are
    compared by an exact McNemar test on the same victims.
    """

    n: int
    transfer: dict[str, float]
    white_box: dict[str, float]
    best_transfer: str
    best_white_box: str
    p: float

    @property
    def gap_points(self) -> float:
        """Best transfer rate minus best white-box rate, in percentage points."""
        return 100.0 * (self.transfer[self.best_transfer] - self.white_box[self.best_white_box])

    @property
    def flagged(self) -> bool:
        """The best transferred attack fools significantly more victims than the best white-box one."""
        return self.gap_points > 0 and significant(self.p)


def check_same_victims(runs: Mapping[str, ModelRun]) -> None:
    """Both bounded stages attacked the same victims with the same targets (one victims stage).

    Raises
    ------
    DataError
        Naming both results files when rows or targets differ.
    """
    first = runs[MODELS[0]]
    for m in MODELS[1:]:
        run = runs[m]
        if not (np.array_equal(run.rows, first.rows) and np.array_equal(run.targets, first.targets)):
            raise DataError(f"{run.results} and {first.results} attacked different victims or targets; expected "
                            "one victims stage for both models (rerun the attack stages)")


def masking_check(runs: Mapping[str, ModelRun], predictions: Predictions, *,
                  targeted: Callable[[str], bool]) -> MaskingCheck:
    """The original's adversarials against the retrained model's own, on the retrained model's victims.

    ``predictions`` is :func:`~advaudio.evaluation.transfer.group_predictions` of ``runs`` (keys ``original``
    and ``retrained``).
    """
    transfer, white_box = {}, {}
    hits_t, hits_w = {}, {}
    asked = None
    for a in predictions:
        asked, _, hits_t[a] = entry_hits(runs, predictions, attack=a, source=SOURCE, target=TARGET,
                                         targeted=targeted(a))
        _, _, hits_w[a] = entry_hits(runs, predictions, attack=a, source=TARGET, target=TARGET, targeted=targeted(a))
    if asked is None:
        raise DataError(f"{runs[TARGET].results}: no attack's adversarials stored; nothing to compare")
    n = int(asked.sum())
    for a in predictions:
        transfer[a] = float(hits_t[a][asked].mean()) if n else 0.0
        white_box[a] = float(hits_w[a][asked].mean()) if n else 0.0
    best_t = max(transfer, key=lambda a: transfer[a])
    best_w = max(white_box, key=lambda a: white_box[a])
    return MaskingCheck(n=n, transfer=transfer, white_box=white_box, best_transfer=best_t, best_white_box=best_w,
                        p=mcnemar_p(hits_t[best_t][asked], hits_w[best_w][asked]))


def cell_transfer(
    runs: Mapping[str, ModelRun],
    *,
    load_model: Callable[[str], torch.nn.Module],
    device: torch.device,
    targeted: Callable[[str], bool] = lambda name: ATTACKS.get(name).targeted,
) -> dict[str, Any]:
    """The cell's transfer matrices and masking check, as ``metrics/transfer.json`` holds them.

    Parameters
    ----------
    runs : mapping of str to ModelRun
        ``original`` and ``retrained``: each model's bounded attack stage.
    load_model : callable
        ``"original"`` or ``"retrained"`` -> that model in eval mode on ``device``.
    device : torch.device
        Where the models run.
    targeted : callable
        Attack name -> whether it is targeted (default: the attack registry).

    Returns
    -------
    dict
        ``models``, ``n_victims``; ``attacks``: per attack ``targeted`` and ``matrix[source][target]`` with
        ``measure`` (``white_box`` on the diagonal, else ``transfer``), ``target_correct``, ``source_succeeded``,
        ``fooled`` and the shown rate (fooled over target_correct on the diagonal, over source_succeeded
        elsewhere) with its Wilson 95 % interval (no ``rate`` where its denominator is 0); ``masking``: the
        :class:`MaskingCheck` (``flagged`` 1/0).

    Raises
    ------
    DataError
        When the runs are not both models or attacked different victims, or from
        :func:`~advaudio.evaluation.transfer.group_predictions`.
    """
    if tuple(runs) != MODELS:
        raise DataError(f"cell_transfer needs the runs {list(MODELS)}, in that order; got {list(runs)}")
    check_same_victims(runs)
    predictions = group_predictions(runs, load_model=load_model, device=device)
    attacks: dict[str, Any] = {}
    for a, counts_of in matrices_of(runs, predictions, targeted=targeted).items():
        matrix: dict[str, dict[str, Any]] = {}
        for s in MODELS:
            matrix[s] = {}
            for t in MODELS:
                counts = counts_of[s][t]
                rate = (counts.fooling_rate() if s == t else counts.transfer_rate()).to_json()
                if rate["rate"] is None:
                    del rate["rate"]  # DVC metrics hold numbers only
                matrix[s][t] = {"measure": "white_box" if s == t else "transfer", **rate,
                                "target_correct": counts.n, "source_succeeded": counts.n_source_success,
                                "fooled": counts.fooled}
        attacks[a] = {"targeted": bool(targeted(a)), "matrix": matrix}
    check = masking_check(runs, predictions, targeted=targeted)
    return {
        "models": list(MODELS),
        "n_victims": len(runs[SOURCE].rows),
        "attacks": attacks,
        "masking": {"n": check.n, "transfer": check.transfer, "white_box": check.white_box,
                    "best_transfer": check.best_transfer, "best_white_box": check.best_white_box,
                    "gap_points": check.gap_points, "p": check.p, "flagged": 1 if check.flagged else 0},
    }


def run_cell_transfer(*, features: Path, victims: Path, checkpoints: Mapping[str, Path],
                      results: Mapping[str, Path], device: torch.device) -> dict[str, Any]:
    """:func:`cell_transfer` from the bounded attack stages' files: per model of :data:`MODELS` its
    checkpoint and ``results.npz``; ``features`` is the spectrogram stage's folder, ``victims`` the victims file.

    Raises
    ------
    DataError
        Naming the file, when one is missing, malformed or trained on other features.
    """
    runs = {m: read_run(model=m, experiment=f"attack@{m}_bounded", rev="workspace", features=features,
                        victims=victims, results=results[m]) for m in MODELS}
    return cell_transfer(runs, device=device,
                         load_model=lambda m: load_victim(checkpoints[m], device=device, meta=runs[m].meta))
