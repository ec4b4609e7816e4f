"""Transfer within the cell (stage ``transfer``): known answers on linear models, the masking flag both ways, the
report section, and named errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from advaudio.errors import DataError
from advaudio.evaluation.masking import cell_transfer
from advaudio.evaluation.transfer import predict_classes, read_run
from advaudio.report.cell_transfer import read_cell_transfer, transfer_markdown, transfer_metrics
from toy_attack_models import threshold_model

CPU = torch.device("cpu")
INPUT_SHAPE = [1, 1, 2]
# Seven victims; logits (x0, x1, threshold). Both models get the first six right; the retrained one (threshold
# 0.85) calls the seventh, (0.8, 0.1), class 2, so its white-box and transfer rates count six victims.
TEST_X = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.2], [0.2, 0.9], [0.95, 0.1], [0.1, 0.95], [0.8, 0.1]],
                  dtype=np.float32)
TEST_Y = np.array([0, 1, 0, 1, 0, 1, 0])
THRESHOLD = {"original": 0.5, "retrained": 0.85}
SWAPPED = TEST_X[:, ::-1].copy()  # every victim's classes 0 and 1 exchanged: fools both models


def _write(root: Path, model: str, adversarials: np.ndarray, *, rows=None) -> dict[str, Path]:
    folder = root / model
    (folder / "features").mkdir(parents=True)
    meta = {"representation": "stft", "class_names": ["a", "b", "c"], "n_classes": 3, "input_shape": INPUT_SHAPE,
            "scaling": {}, "storage": {"dtype": "float16", "clips_per_shard": 8,
                                       "blocks": [{"name": "s", "shape": [1, 2], "resize_to": [1, 2]}],
                                       "splits": {"test": {"n": len(TEST_Y)}}}}
    (folder / "features" / "meta.json").write_text(json.dumps(meta))
    rows = np.arange(len(TEST_Y)) if rows is None else np.asarray(rows)
    targets = 1 - TEST_Y[rows]
    np.savez(folder / "victims.npz", rows=rows, labels=TEST_Y[rows], targets=targets)
    net = threshold_model(THRESHOLD[model])
    adv = adversarials[rows].reshape(-1, *INPUT_SHAPE).astype(np.float32)
    pred = predict_classes(net, adv, batch_size=4, device=CPU)
    np.savez(folder / "results.npz", test_labels=TEST_Y,
             test_predictions=predict_classes(net, TEST_X.reshape(-1, *INPUT_SHAPE), batch_size=4, device=CPU),
             untgt_adv=adv, untgt_success=pred != TEST_Y[rows])
    return {"features": folder / "features", "victims": folder / "victims.npz", "results": folder / "results.npz"}


def _transfer(tmp_path: Path, *, retrained_adv: np.ndarray, retrained_rows=None) -> dict:
    runs = {"original": read_run(model="original", experiment="o", rev="workspace",
                                 **_write(tmp_path, "original", SWAPPED)),
            "retrained": read_run(model="retrained", experiment="r", rev="workspace",
                                  **_write(tmp_path, "retrained", retrained_adv, rows=retrained_rows))}
    return cell_transfer(runs, load_model=lambda m: threshold_model(THRESHOLD[m]), device=CPU, targeted=lambda a: False)


def test_a_transferred_attack_that_beats_a_failing_white_box_attack_is_flagged(tmp_path):
    # The retrained model's own attack "failed" everywhere (its adversarials are the clean clips): masking.
    out = _transfer(tmp_path, retrained_adv=TEST_X)
    m = out["masking"]
    assert (m["n"], m["transfer"]["untgt"], m["white_box"]["untgt"]) == (6, 1.0, 0.0)
    assert m["p"] == pytest.approx(2 * 0.5 ** 6)  # exact McNemar: six discordant victims, all one way
    assert m["gap_points"] == pytest.approx(100.0) and m["flagged"] == 1
    x = out["attacks"]["untgt"]["matrix"]
    # original -> retrained: 7 successes on the original, the retrained model asked about 6, all fooled
    assert (x["original"]["retrained"]["target_correct"], x["original"]["retrained"]["source_succeeded"],
            x["original"]["retrained"]["fooled"], x["original"]["retrained"]["rate"]) == (6, 6, 6, 1.0)
    assert (x["original"]["original"]["n"], x["original"]["original"]["rate"]) == (7, 1.0)
    assert x["retrained"]["retrained"]["rate"] == 0.0
    # retrained -> original: only victim 6 "succeeded" (the retrained model misclassifies it clean); the
    # original model gets it right and is not fooled
    assert (x["retrained"]["original"]["n"], x["retrained"]["original"]["fooled"],
            x["retrained"]["original"]["rate"]) == (1, 0, 0.0)


def test_white_box_as_strong_as_transfer_is_not_flagged(tmp_path):
    out = _transfer(tmp_path, retrained_adv=SWAPPED)
    m = out["masking"]
    assert (m["transfer"]["untgt"], m["white_box"]["untgt"], m["gap_points"], m["flagged"]) == (1.0, 1.0, 0.0, 0)
    assert m["p"] == 1.0


def test_the_two_stages_must_have_attacked_the_same_victims(tmp_path):
    with pytest.raises(DataError, match="attacked different victims or targets"):
        _transfer(tmp_path, retrained_adv=SWAPPED, retrained_rows=[0, 1, 2, 3, 4, 5])


def test_report_section_and_summary_keys(tmp_path):
    out = _transfer(tmp_path, retrained_adv=TEST_X)
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps(out))
    data = read_cell_transfer(path=path, attacks=["untgt"])
    keys = transfer_metrics(data)
    assert keys["transfer_masking_flag"] == 1.0 and keys["transfer_rate_original_to_retrained_untgt"] == 1.0
    assert "transfer_rate_original_to_retrained" not in " ".join(k for k in keys if k.endswith("_p"))
    text = "\n".join(transfer_markdown(data, bound=3.0, heatmap_name="transfer.png"))
    assert "| untgt | 100.0 [" in text and "(7) | 100.0 [" in text  # white box over 7, transfer over 6
    assert "**flagged" in text and "![transfer heat map](transfer.png)" in text
    with pytest.raises(DataError, match=r"no transfer matrix for \['cw'\]"):
        read_cell_transfer(path=path, attacks=["untgt", "cw"])
    del out["masking"]
    path.write_text(json.dumps(out))
    with pytest.raises(DataError, match="no 'masking' object"):
        read_cell_transfer(path=path, attacks=["untgt"])
