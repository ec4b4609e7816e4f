"""The augment stage's clip shards (src/advaudio/data/clip_shards.py) and their reader (features/inputs.py):
float32 in, float16 on disk, float32 out within float16's rounding; every bad shard, shard count or row count
is a DataError that names the file."""

import json

import numpy as np
import pytest

from advaudio.data.clip_shards import ClipShards, ClipWriter, rows_per_shard, shard_path, shards_nbytes
from advaudio.errors import DataError
from advaudio.features.inputs import read_audio_inputs
from test_features_stage import write_audio_folder

L = 300


def _clips(rng, n: int) -> np.ndarray:
    """``(n, L)`` float32 audio at levels from -80 dB to full scale."""
    gains = 10.0 ** rng.uniform(-4, 0, size=(n, 1))
    return (gains * rng.uniform(-1, 1, size=(n, L))).astype(np.float32)


def _folder(tmp_path, rng, *, n: int = 11, per_shard: int = 4):
    x = _clips(rng, n)
    rows = [[i, f"c{i}", f"s{i}", 1 if i % 3 == 0 else 2, i % 2, f"k{i % 2}", 1.0,
             "test" if i % 3 == 0 else "train"] for i in range(n)]
    info = {"dataset": "synth", "sample_rate": 8000, "clip_samples": L, "class_names": ["k0", "k1"],
            "protocol": "official", "test_fold": 1, "n_folds": 2, "dwt_sample_rate": 8000}
    write_audio_folder(tmp_path / "audio", clips=list(x), rows=rows, info=info, rows_per_shard=per_shard)
    return tmp_path / "audio", x


def test_clips_round_trip_within_float16_rounding(tmp_path, rng):
    audio, x = _folder(tmp_path, rng)
    inputs = read_audio_inputs(audio_dir=audio)
    assert sorted(p.name for p in (audio / "clips").iterdir()) == [f"clips-0000{i}.npy" for i in range(3)]
    order = rng.permutation(len(x))
    got = inputs.rows(order)
    assert got.dtype == np.float32 and got.shape == (len(x), L)
    # float16 keeps 11 significant bits: half a unit in the last place is 2^-11 of the value (normal numbers);
    # below 2^-14, subnormals have a fixed step of 2^-24
    np.testing.assert_array_less(np.abs(got - x[order]), np.abs(x[order]) * 2.0**-11 + 2.0**-25)
    np.testing.assert_array_equal(got, x[order].astype(np.float16).astype(np.float32))  # the rounding, exactly
    seen = np.zeros(len(x), dtype=int)
    for where, block in inputs.chunks(order):  # shard by shard
        assert len(np.unique(order[where] // 4)) == 1
        np.testing.assert_array_equal(block, got[where])
        seen[order[where]] += 1
    assert (seen == 1).all()
    with pytest.raises(IndexError):
        inputs.rows([len(x)])


def test_the_writer_reads_back_rows_still_pending_and_written(tmp_path, rng):
    x = _clips(rng, 10)
    writer = ClipWriter(tmp_path, clip_samples=L, rows_per_shard=4)
    for y in x[:7]:
        writer.append(y)
    assert writer.n_rows == 7 and shard_path(tmp_path, index=0).is_file()  # rows 0-3 on disk, 4-6 pending
    np.testing.assert_array_equal(writer.rows([6, 1, 4, 3]), x[[6, 1, 4, 3]].astype(np.float16).astype(np.float32))
    with pytest.raises(IndexError):
        writer.rows([7])
    for y in x[7:]:
        writer.append(y)
    assert writer.close() == 10
    files = sorted((tmp_path / "clips").iterdir())
    assert [np.load(f).shape for f in files] == [(4, L), (4, L), (2, L)] and np.load(files[0]).dtype == np.float16
    assert sum(f.stat().st_size for f in files) == shards_nbytes(n_rows=10, clip_samples=L, rows_per_shard=4)
    assert rows_per_shard(clip_samples=88200, shard_bytes=32 * 2**20) == 190


@pytest.mark.parametrize("sample", [np.nan, np.inf, 1e5])  # 1e5: beyond float16's 65504
def test_the_writer_refuses_a_sample_float16_cannot_hold(tmp_path, sample):
    writer = ClipWriter(tmp_path, clip_samples=L, rows_per_shard=4)
    y = np.zeros(L, np.float32)
    y[5] = sample
    with pytest.raises(DataError, match=r"clips-00000\.npy: row 0 holds a sample that is not finite or beyond"):
        writer.append(y)


def _rewrite(path, array):
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, array)


SPOILS = {  # how a shard is spoiled -> what the message says
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-7]), r"truncated"),
    "trailing bytes": (lambda p: p.write_bytes(p.read_bytes() + b"\0\0"), r"trailing bytes"),
    "float32": (lambda p: _rewrite(p, np.load(p).astype(np.float32)), r"holds float32 \(4, 300\); expected a float16"),
    "int16": (lambda p: _rewrite(p, np.zeros((4, L), np.int16)), r"holds int16"),
    "fewer rows": (lambda p: _rewrite(p, np.load(p)[:3]), r"holds float16 \(3, 300\); expected a float16 clips "
                                                         r"shard of shape \(4, 300\)"),
    "shorter clips": (lambda p: _rewrite(p, np.load(p)[:, :299]), r"\(4, 299\)"),
    "Fortran order": (lambda p: _rewrite(p, np.asfortranarray(np.load(p))), r"Fortran-ordered"),
    "missing": (lambda p: p.unlink(), r"missing"),
    "text": (lambda p: p.write_text("0.1,0.2\n"), r"not an \.npy array"),
}


@pytest.mark.parametrize("spoil", list(SPOILS))
def test_a_bad_shard_is_refused_by_name(tmp_path, rng, spoil):
    audio, _ = _folder(tmp_path, rng)
    path = shard_path(audio, index=1)
    how, message = SPOILS[spoil]
    how(path)
    with pytest.raises(DataError, match=rf"^{path}: .*{message}"):
        read_audio_inputs(audio_dir=audio)


def test_a_non_finite_sample_is_refused_when_read_naming_the_shard_and_row(tmp_path, rng):
    audio, _ = _folder(tmp_path, rng)
    path = shard_path(audio, index=1)
    shard = np.load(path)
    shard[2, 17] = np.inf
    _rewrite(path, shard)
    inputs = read_audio_inputs(audio_dir=audio)  # opening reads no sample
    inputs.rows([0, 4, 5, 8])
    with pytest.raises(DataError, match=rf"^{path}: row 6 holds a sample that is not finite"):
        inputs.rows([0, 6])


def _edit_info(audio, **storage):
    info = json.loads((audio / "info.json").read_text())
    info["storage"].update(storage)
    (audio / "info.json").write_text(json.dumps(info))


def test_shard_and_row_counts_that_disagree_with_the_index_are_refused(tmp_path, rng):
    audio, _ = _folder(tmp_path, rng)
    _edit_info(audio, shards=4)
    with pytest.raises(DataError, match=r"info.json: 4 shards, expected 3 for 11 rows of 4 per shard"):
        read_audio_inputs(audio_dir=audio)
    _edit_info(audio, shards=3)
    lines = (audio / "index.csv").read_text().splitlines()
    (audio / "index.csv").write_text("\n".join(lines[:-1]) + "\n")  # one row fewer than the shards hold
    with pytest.raises(DataError, match=r"info.json: storage holds 11 rows but .*index.csv lists 10"):
        read_audio_inputs(audio_dir=audio)
    _edit_info(audio, rows=10, shards=3)  # info agrees with the index now; the last shard holds 3 rows, not 2
    with pytest.raises(DataError, match=r"clips-00002.npy: holds float16 \(3, 300\); expected .*\(2, 300\)"):
        read_audio_inputs(audio_dir=audio)


def test_a_shard_beyond_the_expected_ones_and_an_old_layout_are_refused(tmp_path, rng):
    audio, _ = _folder(tmp_path, rng)
    _rewrite(shard_path(audio, index=3), np.zeros((4, L), np.float16))
    with pytest.raises(DataError, match=r"clips: holds shards \['clips-00003.npy'\] beyond the 3 expected"):
        read_audio_inputs(audio_dir=audio)
    info = json.loads((audio / "info.json").read_text())
    del info["storage"]  # what the unsharded float32 clips.npy layout wrote
    (audio / "info.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"info.json: missing keys \['storage'\].*rerun the augment stage"):
        read_audio_inputs(audio_dir=audio)


def test_the_reader_pickles_without_the_data(tmp_path, rng):
    import pickle

    audio, x = _folder(tmp_path, rng)
    clips = read_audio_inputs(audio_dir=audio).clips
    again = pickle.loads(pickle.dumps(clips))  # as the spectrogram stage's worker tasks carry it
    assert isinstance(again, ClipShards) and len(pickle.dumps(clips)) < 2000
    np.testing.assert_array_equal(again.rows([3, 9]), clips.rows([3, 9]))
