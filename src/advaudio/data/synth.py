"""The built-in synthetic dataset: UrbanSound8K-like classes written in the ESC-50 layout.

Deterministic from the seed (same seed, same bytes). Each class has ``clips_per_class`` clips cut from
``ceil(clips_per_class / clips_per_source)`` source recordings; cuts of one source share its pitch, timbre,
background and fold (so a split that leaks sources is detectable). Every clip is foreground + a shared
kind of city noise bed at an SNR in [snr_db_min, snr_db_max], sometimes with a quieter distractor event of
another class, at a random level. Folds are balanced per class.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from advaudio.config import SynthConfig
from advaudio.data.synth_sounds import SOUNDS, background

CLASSES = tuple(SOUNDS)  # UrbanSound8K's classID order
META_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
DISTRACTOR_PROBABILITY = 0.25
DISTRACTOR_DB = (-20.0, -8.0)  # distractor level relative to the foreground
PEAK_DBFS = (-26.0, -1.0)
SNR_JITTER_DB = 2.0  # cuts of one source differ a little in SNR
_SOURCE, _BED, _CLIP, _MIX, _FOLDS = range(5)  # independent random streams


@dataclass(frozen=True)
class SynthClip:
    """One row of ``meta/esc50.csv``."""

    filename: str
    fold: int
    target: int
    category: str
    esc10: bool
    src_file: int
    take: str


def plan_clips(*, config: SynthConfig, seed: int) -> list[SynthClip]:
    """List every clip (name, fold, class, source) without synthesising audio."""
    per_source = config.clips_per_source
    n_sources = math.ceil(config.clips_per_class / per_source)
    out = []
    for label in range(config.n_classes):
        perm = np.random.default_rng([seed, label, _FOLDS]).permutation(n_sources)
        for pos, s in enumerate(perm):
            # Round robin over a shuffled source order, offset per class so fold totals stay even too.
            fold = (pos + label) % config.n_folds + 1
            src_file = 10000 * (label + 1) + int(s)
            takes = min(per_source, config.clips_per_class - int(s) * per_source)
            for k in range(takes):
                take = _take_name(k)
                out.append(
                    SynthClip(
                        filename=f"{fold}-{src_file}-{take}-{label}.wav",
                        fold=fold,
                        target=label,
                        category=CLASSES[label],
                        esc10=False,
                        src_file=src_file,
                        take=take,
                    )
                )
    out.sort(key=lambda c: (c.target, c.src_file, c.take))
    return out


def synth_clip(*, clip: SynthClip, config: SynthConfig, seed: int) -> np.ndarray:
    """Synthesise one clip: float32 ``(round(clip_seconds * sample_rate),)`` with peak below 1."""
    n = round(config.clip_seconds * config.sample_rate)
    sr = config.sample_rate
    label, src_id, k = clip.target, clip.src_file, _take_index(clip.take)

    def rngs(stream: int) -> tuple[np.random.Generator, np.random.Generator]:
        return (
            np.random.default_rng([seed, label, src_id, stream]),
            np.random.default_rng([seed, label, src_id, stream, k + 1]),
        )

    src, cut = rngs(_SOURCE)
    fg = SOUNDS[CLASSES[label]](src=src, clip=cut, n=n, sr=sr)
    mix_src, mix = rngs(_MIX)
    if mix.uniform() < DISTRACTOR_PROBABILITY and config.n_classes > 1:
        other = int(mix.choice([c for c in range(config.n_classes) if c != label]))
        d = SOUNDS[CLASSES[other]](src=mix, clip=mix, n=n, sr=sr)
        fg = fg + 10 ** (mix.uniform(*DISTRACTOR_DB) / 20) * d
    bed_src, bed_cut = rngs(_BED)
    bed = background(src=bed_src, clip=bed_cut, n=n, sr=sr)
    snr = mix_src.uniform(config.snr_db_min, config.snr_db_max) + SNR_JITTER_DB * mix.uniform(-1, 1)
    snr = float(np.clip(snr, config.snr_db_min, config.snr_db_max))
    fg_rms = np.sqrt(np.mean(fg**2))
    y = fg + fg_rms * 10 ** (-snr / 20) * bed
    peak = 10 ** (mix.uniform(*PEAK_DBFS) / 20)
    return (y * (peak / np.max(np.abs(y)))).astype(np.float32)


def write_synth(*, out_dir: str | Path, config: SynthConfig, seed: int, progress: bool = True) -> int:
    """Write the dataset to ``out_dir`` (``audio/*.wav`` 16-bit PCM, ``meta/esc50.csv``, ``meta/synth.json``).

    The folder is built beside ``out_dir`` and moved into place at the end, so a failed run leaves no
    half-written dataset. Returns the number of clips.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clips = plan_clips(config=config, seed=seed)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the dataset is an ordinary readable folder
    try:
        (tmp / "audio").mkdir()
        (tmp / "meta").mkdir()
        for clip in tqdm(clips, desc="synth", unit="clip", disable=None if progress else True):
            y = synth_clip(clip=clip, config=config, seed=seed)
            sf.write(tmp / "audio" / clip.filename, y, config.sample_rate, subtype="PCM_16", format="WAV")
        (tmp / "meta" / "esc50.csv").write_text(_csv_text(clips))
        marker = {"seed": seed, "synth": asdict(config), "classes": list(CLASSES[: config.n_classes])}
        (tmp / "meta" / "synth.json").write_text(json.dumps(marker, indent=2) + "\n")
        _replace_dir(src=tmp, dst=out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return len(clips)


# --- helpers ---------------------------------------------------------------------------------------


def _take_name(k: int) -> str:
    name = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        name = chr(ord("A") + r) + name
    return name


def _take_index(take: str) -> int:
    k = 0
    for ch in take:
        k = k * 26 + (ord(ch) - ord("A") + 1)
    return k - 1


def _csv_text(clips: list[SynthClip]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(META_COLUMNS)
    for c in clips:
        writer.writerow([c.filename, c.fold, c.target, c.category, c.esc10, c.src_file, c.take])
    return buf.getvalue()


def _replace_dir(*, src: Path, dst: Path) -> None:
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
        os.replace(dst, old / dst.name)
        os.replace(src, dst)
        shutil.rmtree(old)
    else:
        os.replace(src, dst)
