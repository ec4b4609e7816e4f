"""Splits: official folds and the paper's grouped, stratified 70/30 holdout with CV folds; no leakage."""

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from advaudio.config import SplitConfig
from advaudio.data.datasets import Clip, Dataset
from advaudio.data.splits import TEST, TRAIN, assign_splits, check_no_leakage
from advaudio.errors import ConfigError, DataError


def make_dataset(rng, *, name="esc50", n_classes=4, sources_per_class=30, n_folds=5) -> Dataset:
    clips = []
    for label in range(n_classes):
        for s in range(sources_per_class):
            source = f"{label}-{s}"
            fold = s % n_folds + 1
            for take in range(int(rng.integers(1, 4))):  # sources of 1 to 3 clips
                clip_id = f"{source}-{take}"
                clips.append(Clip(Path(f"{clip_id}.wav"), clip_id, source, fold, label, f"c{label}"))
    names = tuple(f"c{i}" for i in range(n_classes))
    return Dataset(name, Path("."), Path("meta.csv"), names, 5.0, 16000, n_folds, tuple(clips))


def test_official_uses_the_test_fold(rng):
    ds = make_dataset(rng)
    out = assign_splits(dataset=ds, config=SplitConfig(protocol="official", test_fold=3), seed=0)
    assert all((a.split == TEST) == (c.fold == 3) for a, c in zip(out, ds.clips))
    assert all(a.fold == c.fold for a, c in zip(out, ds.clips))


def test_official_test_fold_beyond_the_official_folds(rng):
    with pytest.raises(ConfigError, match=r"split.test_fold = 6, .* 5 official folds; expected 1..5"):
        assign_splits(dataset=make_dataset(rng), config=SplitConfig(test_fold=6), seed=0)


def test_official_test_fold_absent_from_the_listing(rng):
    ds = make_dataset(rng)
    subset = Dataset(**{**ds.__dict__, "clips": tuple(c for c in ds.clips if c.fold != 4)})
    with pytest.raises(ConfigError, match=r"split.test_fold = 4 .*\[1, 2, 3, 5\]"):
        assign_splits(dataset=subset, config=SplitConfig(test_fold=4), seed=0)


def test_official_folds_that_split_a_source_are_refused(rng):
    ds = make_dataset(rng)
    c = ds.clips[0]
    moved = Clip(c.path, "x", c.source_id, c.fold % 5 + 1, c.label, c.category)  # same source, other fold
    leaky = Dataset(**{**ds.__dict__, "clips": ds.clips + (moved,)})
    with pytest.raises(DataError, match="meta.csv"):
        assign_splits(dataset=leaky, config=SplitConfig(test_fold=c.fold % 5 + 1), seed=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_holdout_grouped_stratified_and_cv_folds(rng, seed):
    ds = make_dataset(rng)
    config = SplitConfig(protocol="paper", holdout=0.3, cv_folds=5)
    out = assign_splits(dataset=ds, config=config, seed=seed)
    check_no_leakage(source_ids=[c.source_id for c in ds.clips], splits=[a.split for a in out])
    for label in range(4):
        sides = [a.split for a, c in zip(out, ds.clips) if c.label == label]
        assert 0.25 <= sides.count(TEST) / len(sides) <= 0.35
    fold_of_source = defaultdict(set)
    for a, c in zip(out, ds.clips):
        fold_of_source[c.source_id].add(a.fold)
        assert (a.fold == 0) == (a.split == TEST)
    assert all(len(f) == 1 for f in fold_of_source.values())  # CV folds grouped by source
    for label in range(4):
        sizes = Counter(a.fold for a, c in zip(out, ds.clips) if c.label == label and a.split == TRAIN)
        assert sorted(sizes) == [1, 2, 3, 4, 5] and max(sizes.values()) - min(sizes.values()) <= 3


def test_paper_split_is_seeded(rng):
    ds = make_dataset(rng)
    config = SplitConfig(protocol="paper")
    a = assign_splits(dataset=ds, config=config, seed=5)
    assert a == assign_splits(dataset=ds, config=config, seed=5)
    assert a != assign_splits(dataset=ds, config=config, seed=6)


def test_paper_on_urbansound8k_warns(rng, capsys):
    assign_splits(dataset=make_dataset(rng, name="urbansound8k"), config=SplitConfig(protocol="paper"), seed=0)
    assert "inflates accuracy" in capsys.readouterr().err


def test_leakage_check_can_fail():
    with pytest.raises(DataError, match="both train and test"):
        check_no_leakage(source_ids=["a", "b", "a"], splits=[TRAIN, TEST, TEST])
