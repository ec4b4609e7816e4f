"""The DataLoader-based reader gives byte for byte the batches of the hand-written reader it replaced."""

import csv

import numpy as np
import pytest
import torch

from advaudio.features.reader import TensorSplit
from advaudio.features.resize import resize_batch
from advaudio.features.shards import SplitWriter, storage_meta
from advaudio.features.store import INDEX_COLUMNS, open_features
from advaudio.io import write_json

BLOCKS = {"spectrogram": (40, 24), "tonnetz": (6, 24)}  # native (rows, frames), top to bottom
TARGETS = {"spectrogram": (12, 16), "tonnetz": (4, 16)}  # read at 16 x 16
N_TRAIN, PER_SHARD = 30, 7  # several shards, a partial last one


@pytest.fixture(scope="module")
def two_blocks(tmp_path_factory):
    """A features folder of two blocks (as stft_tonnetz stores them) and the float16 arrays written to it."""
    directory, rng = tmp_path_factory.mktemp("f"), np.random.default_rng(7)
    stored, splits = {}, {}
    for split, n in (("train", N_TRAIN), ("test", 3)):
        stored[split] = {name: rng.uniform(0, 1, (n, *shape)).astype(np.float16) for name, shape in BLOCKS.items()}
        writer = SplitWriter(directory, split=split, shapes=BLOCKS, clips_per_shard=PER_SHARD)
        for i in range(n):
            writer.add({name: stored[split][name][i] for name in BLOCKS})
        splits[split] = writer.close()
        with (directory / f"{split}.csv").open("w", newline="") as fh:
            index = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS)
            index.writeheader()
            index.writerows({"row": i, "clip_id": f"c{i}", "source_id": f"s{i}", "fold": 1 + i % 3, "label": i % 4,
                             "category": f"k{i % 4}", "augmentation": 1.0, "split": split} for i in range(n))
    write_json(directory / "meta.json", {
        "class_names": [f"k{i}" for i in range(4)], "n_classes": 4, "input_shape": [1, 16, 16],
        "storage": storage_meta(blocks=BLOCKS, targets=TARGETS, splits=splits, clips_per_shard=PER_SHARD)})
    return directory, stored["train"]


def reference_batches(stored, rows, *, batch_size):
    """What the hand-written reader computed: per slice of ``rows``, each block's float16 rows as float32,
    resized with :func:`resize_batch`, stacked top to bottom, clamped to [0, 1]; labels ``row % 4``."""
    out = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        parts = [resize_batch(torch.from_numpy(stored[name][chunk]).float(), height=h, width=w)
                 for name, (h, w) in TARGETS.items()]
        out.append((torch.cat(parts, dim=2).clamp_(0.0, 1.0), torch.from_numpy(chunk % 4)))
    return out


def assert_same(got, want):
    assert len(got) == len(want)
    for (x, y), (x_ref, y_ref) in zip(got, want):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


@pytest.mark.parametrize("prefetch", [False, True])
def test_shuffled_batches_are_the_hand_written_readers(two_blocks, prefetch):
    directory, stored = two_blocks
    reader = open_features(directory).train
    order = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(3 * 100_003)).numpy()  # as fit does
    for batch_size in (1, 8, N_TRAIN, 64):
        got = list(reader.batches(order, batch_size=batch_size, prefetch=prefetch))
        assert_same(got, reference_batches(stored, order, batch_size=batch_size))
    assert_same(list(reader.batches(batch_size=8, prefetch=prefetch)),  # every row in order
                reference_batches(stored, np.arange(N_TRAIN), batch_size=8))


def test_subsets_cache_and_single_reads_are_the_hand_written_readers(two_blocks):
    directory, stored = two_blocks
    reader = open_features(directory).train
    rows = np.array([29, 0, 7, 7, 13, 6, 21, 2, 28])  # every shard, a repeat, any order
    sub = reader.subset(rows)
    order = np.array([4, 0, 8, 1, 3, 2, 7, 5, 6])
    assert_same(list(sub.batches(order, batch_size=4)), reference_batches(stored, rows[order], batch_size=4))
    assert_same(list(sub.subset(order[:5]).batches(batch_size=2)),
                reference_batches(stored, rows[order[:5]], batch_size=2))
    cached = sub.cached()
    assert isinstance(cached, TensorSplit)
    assert_same(list(cached.batches(order, batch_size=4)), reference_batches(stored, rows[order], batch_size=4))
    assert torch.equal(reader.read(rows), torch.cat([x for x, _ in reference_batches(stored, rows, batch_size=99)]))
    assert torch.equal(reader.load(), torch.cat([x for x, _ in reference_batches(stored, np.arange(N_TRAIN),
                                                                                  batch_size=99)]))
    assert list(reader.batches(np.array([], dtype=np.int64), batch_size=4)) == []


def test_reading_leaves_the_global_rng_alone(two_blocks):
    """A DataLoader draws a seed per iterator; from torch's global RNG it would shift dropout and attack starts."""
    reader = open_features(two_blocks[0]).train
    torch.manual_seed(0)
    state = torch.get_rng_state()
    for prefetch in (False, True):
        list(reader.batches(batch_size=8, prefetch=prefetch))
    list(reader.cached().batches(batch_size=8))
    assert torch.equal(torch.get_rng_state(), state)
