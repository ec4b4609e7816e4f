"""The project's binary files read back: a missing, corrupt, truncated, wrong-kind or hostile file is a DataError
that names it, and nothing in it is ever unpickled (src/advaudio/loading.py and every reader built on it)."""

import io
import json
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch

from advaudio.errors import DataError
from advaudio.evaluation.victims import load_victims
from advaudio.features.inputs import read_audio_inputs
from advaudio.features.store import open_features
from advaudio.loading import load_torch, open_npy, read_npz
from advaudio.report.inputs import read_examples
from advaudio.report.paired import read_victim_results
from advaudio.training.fake_features import write_fake_features
from test_features_stage import write_fake_audio


class _Payload:
    """Unpickling this creates ``marker``, as a hostile file would run code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _spoil(path, kind, marker):
    """Replace ``path`` (a good file) by a bad one of ``kind``."""
    good = path.read_bytes()
    if kind == "text":
        path.write_text("rows,labels\n1,2\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "flipped bytes":
        spoiled = bytearray(good)
        for i in range(40, len(spoiled), 7):
            spoiled[i] ^= 0xFF
        path.write_bytes(bytes(spoiled))
    elif kind == "hostile pickle":
        path.write_bytes(pickle.dumps({"rows": _Payload(marker)}))
    elif kind == "hostile object array":
        buf = io.BytesIO()
        np.save(buf, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
        if zipfile.is_zipfile(io.BytesIO(good)):
            with zipfile.ZipFile(io.BytesIO(good)) as z:
                names = z.namelist()
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as z:  # every member an object array
                for name in names:
                    z.writestr(name, buf.getvalue())
            path.write_bytes(out.getvalue())
        else:
            path.write_bytes(buf.getvalue())
    elif kind == "a directory":
        path.unlink()
        path.mkdir()


KINDS = ["text", "empty", "truncated", "flipped bytes", "hostile pickle", "hostile object array", "a directory"]


def overwrite_in_zip(path, data: bytes) -> str:
    """Overwrite the start of the largest member of the zip file ``path`` (a torch file: members are stored,
    not compressed) with ``data`` in place, as a disk or copy error would; returns the member's name."""
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = np.frombuffer(bytes(raw[member.header_offset + 26 : member.header_offset + 30]), "<u2")
    start = member.header_offset + 30 + int(name_len) + int(extra_len)
    raw[start : start + len(data)] = data
    path.write_bytes(bytes(raw))
    return member.filename


def _victims(tmp_path):
    path = tmp_path / "victims.npz"
    np.savez(path, rows=np.arange(3), labels=np.zeros(3, dtype=np.int64), targets=np.ones(3, dtype=np.int64))
    return path, lambda: load_victims(path, test_labels=np.zeros(5, dtype=np.int64))


def _results(tmp_path):
    path = tmp_path / "results.npz"
    np.savez(path, model_correct=np.ones(3, bool), test_predictions=np.zeros(5), test_labels=np.zeros(5),
             cw_l2=np.ones(3), cw_success=np.ones(3, bool))
    return path, lambda: read_victim_results(path=path, attacks=["cw"])


def _examples(tmp_path):
    path = tmp_path / "examples.npz"
    x = np.zeros((2, 1, 4, 4), np.float32)
    np.savez(path, x=x, cw_adv=x, cw_l2=np.ones(2), labels=np.zeros(2), targets=np.zeros(2),
             class_names=np.array(["a", "b"]))
    return path, lambda: read_examples(path=path, attacks=["cw"])


def _clips(tmp_path):
    write_fake_audio(tmp_path / "audio", rng=np.random.default_rng(0), n_train=2, n_test=2, seconds=0.05)
    inputs = lambda: read_audio_inputs(audio_dir=tmp_path / "audio").rows(range(4))  # noqa: E731
    return tmp_path / "audio" / "clips" / "clips-00000.npy", inputs


def _shard(tmp_path):
    write_fake_features(tmp_path / "features", sources_per_class=2)
    return tmp_path / "features" / "test" / "spectrogram-00000.npy", lambda: open_features(tmp_path / "features")


READERS = {"victims.npz": _victims, "results.npz": _results, "examples.npz": _examples, "clips shard": _clips,
           "feature shard": _shard}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reader", list(READERS))
def test_a_bad_project_file_is_named_and_nothing_in_it_runs(tmp_path, reader, kind):
    path, read = READERS[reader](tmp_path)
    read()  # the good file reads
    marker = tmp_path / "pwned"
    _spoil(path, kind, marker)
    with pytest.raises(DataError) as info:
        read()
    assert str(path) in str(info.value) or path.name in str(info.value), str(info.value)
    assert not marker.exists()
    assert "allow_pickle=True" not in str(info.value)


def test_an_npz_given_for_an_npy_and_the_other_way_round_are_named(tmp_path):
    npy, npz = tmp_path / "a.npy", tmp_path / "b.npz"
    np.save(npy, np.zeros(3))
    npz.write_bytes(_npz_bytes(a=np.zeros(3)))
    with pytest.raises(DataError, match=r"a.npy' is not an archive: an .npy array, not an .npz"):
        read_npz(npy, kind="an archive", hint="h")
    with pytest.raises(DataError, match=r"b.npz' is not an array: an .npz archive, not an .npy"):
        open_npy(npz, kind="an array", hint="h")
    with pytest.raises(DataError, match=r"b.npz: missing arrays \['rows'\]"):
        read_npz(npz, keys=["rows"], kind="an archive", hint="h")


def test_a_torch_file_read_as_json_text_is_named(tmp_path):
    path = tmp_path / "state.pt"
    path.write_text(json.dumps({"state_dict": {}}))
    with pytest.raises(DataError, match=r"state.pt' is not a thing: the safe loader refused it unloaded"):
        load_torch(path, kind="a thing")
    shutil.rmtree(tmp_path)
    with pytest.raises(DataError, match=r"state.pt' not found \(expected a thing\)"):
        load_torch(path, kind="a thing")


@pytest.mark.parametrize("fill", [np.nan, 0.0])
def test_a_torch_file_with_overwritten_tensor_bytes_is_named_with_its_member(tmp_path, fill):
    # torch.load never checks the zip's CRCs: without load_torch's check this loads, with a tensor silently changed
    path = tmp_path / "state.pt"
    torch.save({"weights": torch.ones(4096), "epoch": 3}, path)
    member = overwrite_in_zip(path, np.full(1000, fill, np.float32).tobytes())
    assert zipfile.ZipFile(path).testzip() == member
    with pytest.raises(DataError) as info:
        load_torch(path, kind="a thing")
    message = str(info.value)
    assert f"{str(path)!r} is not a thing: its member {member!r} fails its CRC check" in message, message


def test_torch_files_in_the_legacy_format_still_load(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"weights": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(load_torch(path, kind="a thing")["weights"], torch.ones(3))
