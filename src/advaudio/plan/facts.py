"""What a run's size depends on before any data is read: clip counts, lengths, classes and splits.

ESC-50 and UrbanSound8K are described by their published sizes (2,000 clips of 5 s in 50 classes and 5 folds;
8,732 clips of up to 4 s in 10 classes and 10 folds); synth by ``params.synth``. Real runs read the real
metadata; these numbers only size the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from advaudio.config import Params

# dataset -> (clips, clip seconds, classes, folds, wavelet sample rate of the study)
PUBLISHED = {
    "esc50": (2000, 5.0, 50, 5, 16000),
    "urbansound8k": (8732, 4.0, 10, 10, 8000),
}


@dataclass(frozen=True)
class DatasetFacts:
    """Sizes of one dataset under ``params``: clips per split (the training split with its pitch shifts)."""

    name: str
    n_clips: int
    clip_seconds: float
    sample_rate: int
    dwt_sample_rate: int
    n_classes: int
    n_test: int
    n_train_rows: int  # training clips times (1 + number of pitch-shift scales)
    pool_folds: int  # folds of the training pool (one is the validation fold)

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


def dataset_facts(*, params: Params, dataset: str) -> DatasetFacts:
    """The sizes of ``dataset`` under ``params`` (split protocol, augmentation scales, audio settings).

    Raises
    ------
    ValueError
        For a dataset this module does not know.
    """
    if dataset == "synth":
        s = params.synth
        n_clips, seconds, n_classes, n_folds = s.n_classes * s.clips_per_class, s.clip_seconds, s.n_classes, s.n_folds
        dwt_rate = params.spectrogram.dwt_sample_rate
    elif dataset in PUBLISHED:
        n_clips, seconds, n_classes, n_folds, dwt_rate = PUBLISHED[dataset]
    else:
        raise ValueError(f"dataset {dataset!r} is unknown to the planner; choose synth, esc50 or urbansound8k")
    if params.audio.clip_seconds > 0:
        seconds = params.audio.clip_seconds
    test_share = params.split.holdout if params.split.protocol == "paper" else 1.0 / n_folds
    n_test = int(round(n_clips * test_share))
    rows = (n_clips - n_test) * (1 + len(params.augment.scales))
    pool_folds = params.split.cv_folds if params.split.protocol == "paper" else n_folds - 1
    return DatasetFacts(name=dataset, n_clips=n_clips, clip_seconds=seconds, sample_rate=params.audio.sample_rate,
                        dwt_sample_rate=dwt_rate, n_classes=n_classes, n_test=n_test, n_train_rows=rows,
                        pool_folds=pool_folds)
