"""The ``roundtrip`` stage: do the original model's adversarials survive as sound? (issue 19 item 1, STFT).

For every attack and every victim the attack fooled (``attack@original``'s ``results.npz``), the input
perturbation is turned into a waveform (:func:`~advaudio.evaluation.roundtrip.stft_round_trip`), analysed again
with the spectrogram stage's own code (the representation's blocks, the training split's scaling, float16
storage, the reader's resize) and classified again. Per attack it reports the victims considered (``n``), the
share still fooled after the round trip (targeted attacks: still the target; DeepFool: still wrong) and the
waveform perturbation's SNR in dB (median and mean). The first victim's clean and round-trip clips are written as
WAVs so a person can listen. Representations without an inverse here (the wavelet ones) write
``{"supported": 0}``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from advaudio.attacks import ATTACKS
from advaudio.config import Params, SpectrogramConfig, resolve_device
from advaudio.errors import DataError
from advaudio.evaluation.precision import exact_float32
from advaudio.evaluation.roundtrip import snr_db, stft_round_trip
from advaudio.evaluation.victims import load_victim, load_victims
from advaudio.features.inputs import read_audio_inputs
from advaudio.features.representations import REPRESENTATIONS
from advaudio.features.resize import resize_batch
from advaudio.features.scaling import KEY_PREFIX, scale_block
from advaudio.features.store import open_split, read_meta
from advaudio.loading import read_npz

SUPPORTED = ("stft", "stft_tonnetz")  # representations whose spectrogram block inverts here (the STFT)


@dataclass
class RoundTripRun:
    """``metrics/roundtrip.json`` and the WAVs to write (name -> (samples, sample rate))."""

    metrics: dict
    wavs: dict[str, tuple[np.ndarray, int]]


def round_trip_stage(*, params: Params, features: Path, audio: Path, checkpoint: Path, victims: Path,
                     results: Path) -> RoundTripRun:
    """Round-trip every fooled victim of every attack of ``params.attack.attacks``.

    Raises
    ------
    DataError
        On missing or inconsistent inputs (the message names the file).
    """
    meta = read_meta(features)
    if meta["representation"] not in SUPPORTED:
        return RoundTripRun(metrics={"supported": 0}, wavs={})
    device = torch.device(resolve_device(params.device))
    model = load_victim(checkpoint, device=device, meta=meta)
    test = open_split(features, "test", meta=meta)
    rows, targets = load_victims(victims, test_labels=test.y.numpy())
    labels = test.y.numpy()[rows]
    clips = _victim_clips(features=features, audio=audio, rows=rows)
    info = read_audio_inputs(audio_dir=audio).info
    sample_rate = int(info["sample_rate"])
    analyse = InputMaker(meta=meta, config=params.spectrogram, sample_rate=sample_rate,
                         dwt_sample_rate=int(info["dwt_sample_rate"]), device=device)
    x = test.read(rows, device=device)
    stored = read_npz(results, kind="an advaudio attack results file", hint="rerun attack@original")
    metrics: dict = {"supported": 1}
    wavs: dict[str, tuple[np.ndarray, int]] = {}
    cfg, scaling = params.spectrogram, meta["scaling"]
    rows_spec = analyse.targets["spectrogram"][0]  # the spectrogram block's rows at the top of the input
    for name in params.attack.attacks:
        adv, success = stored[f"{name}_adv"], stored[f"{name}_success"].astype(bool)
        if adv.shape != tuple(x.shape):
            raise DataError(f"{results}: {name}_adv is {adv.shape}, the victims' inputs {tuple(x.shape)}")
        fooled = np.flatnonzero(success)
        sounds = [stft_round_trip(y=clips[i], delta=(adv[i, 0] - x[i, 0].cpu().numpy())[:rows_spec],
                                  lo=scaling["lo"], hi=scaling["hi"], n_fft=cfg.n_fft, hop_length=cfg.hop_length)
                  for i in fooled]
        still = np.zeros(len(fooled), dtype=bool)
        if len(fooled):
            with exact_float32(), torch.no_grad():
                pred = model(analyse.inputs(sounds)).argmax(dim=1).cpu().numpy()
            still = pred == targets[fooled] if ATTACKS.get(name).targeted else pred != labels[fooled]
        snrs = np.array([snr_db(clean=clips[i], adversarial=s) for i, s in zip(fooled, sounds)])
        metrics[name] = {"n": int(len(fooled)), "fooling_rate": float(still.mean()) if len(fooled) else 0.0}
        if len(fooled):
            metrics[name].update(snr_db_median=float(np.median(snrs)), snr_db_mean=float(np.mean(snrs)))
        if len(fooled) and fooled[0] == 0:  # the first victim, Figure 1's sample
            wavs[f"{name}_round_trip.wav"] = (sounds[0].astype(np.float32), sample_rate)
    if len(rows):
        wavs["clean.wav"] = (clips[0].astype(np.float32), sample_rate)
    attacks = [a for a in params.attack.attacks if metrics[a]["n"]]
    if attacks:
        metrics["mean"] = {"fooling_rate": float(np.mean([metrics[a]["fooling_rate"] for a in attacks]))}
    return RoundTripRun(metrics=metrics, wavs=wavs)


def _victim_clips(*, features: Path, audio: Path, rows: np.ndarray) -> np.ndarray:
    """The victims' clean waveforms, float64 ``(len(rows), L)``: the ``build/audio`` rows named by the ``row``
    column of the features' test.csv."""
    with open(features / "test.csv", newline="") as fh:
        index = list(csv.DictReader(fh))
    inputs = read_audio_inputs(audio_dir=audio)
    try:
        return inputs.rows([int(index[r]["row"]) for r in rows]).astype(np.float64)
    except (KeyError, ValueError, IndexError):
        raise DataError(f"{features / 'test.csv'}: its 'row' column does not name rows of {audio / 'index.csv'}; "
                        "rerun the spectrogram stage") from None


class InputMaker:
    """Model inputs of waveforms, made as the spectrogram stage and the reader make them: each block of the
    representation at its native resolution, scaled with the training split's constants, stored as float16,
    resized to its input rows on the device, stacked and clamped to [0, 1]."""

    def __init__(self, *, meta: dict, config: SpectrogramConfig, sample_rate: int, dwt_sample_rate: int,
                 device: torch.device) -> None:
        self.rep = REPRESENTATIONS.get(meta["representation"])
        self.scaling, self.config, self.device = meta["scaling"], config, device
        self.sample_rate, self.dwt_sample_rate = sample_rate, dwt_sample_rate
        self.targets = {b["name"]: tuple(b["resize_to"]) for b in meta["storage"]["blocks"]}

    def inputs(self, sounds: list[np.ndarray]) -> torch.Tensor:
        """``(len(sounds), 1, H, W)`` float32 on the device."""
        parts = []
        for block, (h, w) in self.targets.items():
            native = np.stack([scale_block(values=self.rep.compute(block, y=np.asarray(s, dtype=np.float32),
                                                                   sample_rate=self.sample_rate,
                                                                   dwt_sample_rate=self.dwt_sample_rate,
                                                                   config=self.config),
                                           lo=self.scaling[KEY_PREFIX[block] + "lo"],
                                           hi=self.scaling[KEY_PREFIX[block] + "hi"]) for s in sounds])
            parts.append(resize_batch(torch.from_numpy(native).to(self.device).float(), height=h, width=w))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
        return x.clamp_(0.0, 1.0)
