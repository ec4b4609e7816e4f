"""Bad input in a dataset folder: audio that lies, metadata that leaks or double counts, out-of-range
labels and folds, paths that leave dataset_dir, non-regular files. Each is refused naming the file or the
csv line, or skipped and listed under ``audio.skip_bad_files``; nothing is ever written into the dataset."""

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from advaudio.data.datasets import open_dataset
from advaudio.data.prepare import prepare_audio
from advaudio.data.wav import load_wav
from advaudio.errors import ConfigError, DataError
from test_data_datasets import make_params, read_index, write_esc50, write_us8k


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _write_rows(path: Path, rows: list[list]) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _esc50(tmp_path, rng) -> tuple[Path, Path, list[list[str]]]:
    root = write_esc50(tmp_path / "ESC-50", rng)
    meta = root / "meta" / "esc50.csv"
    return root, meta, _csv_rows(meta)


def _us8k(tmp_path, rng) -> tuple[Path, Path, list[list[str]]]:
    root = write_us8k(tmp_path / "UrbanSound8K", rng, n_folds=3, sources_per_fold=1)
    meta = root / "metadata" / "UrbanSound8K.csv"
    return root, meta, _csv_rows(meta)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def _truncate(path: Path, keep_fraction: float) -> None:
    data = path.read_bytes()
    header = data.index(b"data") + 8
    path.write_bytes(data[: header + int((len(data) - header) * keep_fraction)])


# --- audio that lies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("subtype, channels", [("PCM_16", 1), ("PCM_24", 2), ("FLOAT", 1)])
def test_truncated_wav_is_refused_naming_the_file(tmp_path, rng, subtype, channels):
    path = tmp_path / "clip.wav"
    sf.write(path, 0.3 * rng.uniform(-1, 1, (4 * 8000, channels)), 8000, subtype=subtype)
    _truncate(path, 0.1)  # the header promises 4 s, 0.4 s of bytes are present
    with pytest.raises(DataError, match=r"clip\.wav: truncated: .*declares 4\.000 s.*holds 0\.400 s"):
        load_wav(path, sample_rate=8000, n_samples=4 * 8000)


def test_complete_wav_with_trailing_chunk_is_accepted(tmp_path, rng):
    path = tmp_path / "clip.wav"
    sf.write(path, 0.3 * rng.uniform(-1, 1, 8000), 8000, subtype="PCM_16")
    with open(path, "ab") as fh:  # a LIST chunk after the data, as editors write
        fh.write(b"LIST" + (12).to_bytes(4, "little") + b"INFOISFT\x00\x00\x00\x00")
    assert load_wav(path, sample_rate=8000, n_samples=8000).shape == (8000,)


def test_truncated_clip_in_a_dataset_is_refused_or_skipped(tmp_path, rng):
    root, _, _ = _esc50(tmp_path, rng)
    victim = sorted((root / "audio").glob("3-*.wav"))[0]
    _truncate(victim, 0.1)
    params = make_params(dataset="esc50", dataset_dir=str(root))
    with pytest.raises(DataError, match=f"{victim.name}: truncated"):
        prepare_audio(params=params, out_dir=tmp_path / "a")
    skipping = make_params(dataset="esc50", dataset_dir=str(root), audio={"skip_bad_files": True})
    result = prepare_audio(params=skipping, out_dir=tmp_path / "b")
    assert [Path(r["path"]).name for r in read_index(tmp_path / "b" / "skipped.csv")] == [victim.name]
    assert len(result.skipped) == 1 and result.n_original == 9


@pytest.mark.parametrize("peak, accepted", [(3e5, False), (4.0, False), (1.0, True), (1.5, True)])
def test_float_wav_beyond_full_scale(tmp_path, peak, accepted):
    path = tmp_path / "loud.wav"
    y = np.sin(np.arange(8000) / 5.0)
    sf.write(path, np.stack([0.1 * y, peak * y], axis=1), 8000, subtype="FLOAT")  # one loud channel
    if accepted:
        load_wav(path, sample_rate=8000, n_samples=8000)
    else:
        with pytest.raises(DataError, match=r"loud\.wav: samples reach .*expected float audio within \[-1, 1\]"):
            load_wav(path, sample_rate=8000, n_samples=8000)


def test_implausible_sample_rate_in_the_header(tmp_path, rng):
    path = tmp_path / "slow.wav"
    sf.write(path, 0.3 * rng.uniform(-1, 1, 400), 100, subtype="PCM_16")
    with pytest.raises(DataError, match=r"slow\.wav: sample rate 100 Hz"):
        load_wav(path, sample_rate=8000, n_samples=8000)


# --- metadata that leaks or double counts --------------------------------------------------------------


def test_duplicated_csv_row_names_both_lines(tmp_path, rng):
    root, meta, rows = _esc50(tmp_path, rng)
    _write_rows(meta, rows + [rows[3]])
    with pytest.raises(DataError, match=rf"esc50\.csv, lines 4 and {len(rows) + 1}: clip .* listed twice"):
        open_dataset(name="esc50", root=root, params=make_params())


def test_one_clip_in_two_folds_is_refused(tmp_path, rng):
    root, meta, rows = _us8k(tmp_path, rng)
    name, fold = rows[1][0], rows[1][5]
    other = "3" if fold != "3" else "2"
    shutil.copy(root / "audio" / f"fold{fold}" / name, root / "audio" / f"fold{other}" / name)
    _write_rows(meta, rows + [[*rows[1][:5], other, *rows[1][6:]]])
    with pytest.raises(DataError, match=rf"lines 2 and {len(rows) + 1}: clip .* listed twice \(folds {fold} and {other}\)"):
        open_dataset(name="urbansound8k", root=root, params=make_params())


def test_one_source_in_two_folds_is_refused(tmp_path, rng):
    root, meta, rows = _us8k(tmp_path, rng)
    source, fold = rows[1][1], rows[1][5]
    other = "3" if fold != "3" else "2"
    name = f"{source}-{rows[1][6]}-0-9.wav"  # another slice of the same recording, in another fold
    shutil.copy(root / "audio" / f"fold{fold}" / rows[1][0], root / "audio" / f"fold{other}" / name)
    _write_rows(meta, rows + [[name, *rows[1][1:5], other, *rows[1][6:]]])
    with pytest.raises(DataError, match=rf"source '{source}' is in folds {fold} and {other}"):
        open_dataset(name="urbansound8k", root=root, params=make_params())


@pytest.mark.parametrize("dataset", ["esc50", "urbansound8k"])
def test_source_id_that_contradicts_the_file_name(tmp_path, rng, dataset):
    root, meta, rows = (_esc50 if dataset == "esc50" else _us8k)(tmp_path, rng)
    column = 5 if dataset == "esc50" else 1  # src_file / fsID
    rows[2][column] = "777"
    _write_rows(meta, rows)
    said = "src_file" if dataset == "esc50" else "fsID"
    with pytest.raises(DataError, match=rf"line 3: file name .* says {said} \d+ but the row's {said} is 777"):
        open_dataset(name=dataset, root=root, params=make_params())


def test_identical_audio_under_two_names_is_refused_or_skipped(tmp_path, rng):
    root, meta, rows = _esc50(tmp_path, rng)
    copy = "2-999-A-1.wav"  # its own consistent name, source and fold: only the audio gives it away
    shutil.copy(root / "audio" / rows[1][0], root / "audio" / copy)
    _write_rows(meta, rows + [[copy, "2", "1", "rain", "False", "999", "A"]])
    params = make_params(dataset="esc50", dataset_dir=str(root))
    with pytest.raises(DataError, match=rf"{copy}: the same audio as .*{rows[1][0]}"):
        prepare_audio(params=params, out_dir=tmp_path / "a")
    skipping = make_params(dataset="esc50", dataset_dir=str(root), audio={"skip_bad_files": True})
    prepare_audio(params=skipping, out_dir=tmp_path / "b")
    assert [Path(r["path"]).name for r in read_index(tmp_path / "b" / "skipped.csv")] == [copy]


# --- out-of-range labels and folds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "dataset, column, value, expected",
    [
        ("esc50", 2, "49999", r"'target' is 49999; this dataset's target values are 0..49"),
        ("esc50", 2, "-1", r"'target' is -1"),
        ("esc50", 1, "0", r"'fold' is 0; this dataset's fold values are 1..5"),
        ("esc50", 1, "-3", r"'fold' is -3"),
        ("esc50", 1, "7", r"'fold' is 7"),
        ("esc50", 1, "2.5", r"'fold' must be an integer, got '2.5'"),
        ("urbansound8k", 5, "0", r"'fold' is 0; this dataset's fold values are 1..10"),
        ("urbansound8k", 5, "11", r"'fold' is 11"),
        ("urbansound8k", 6, "10", r"'classID' is 10; this dataset's classID values are 0..9"),
        ("urbansound8k", 7, "siren", r"class 'siren' does not match classID"),
        # only ASCII integers: int() would also take 1_0 and other scripts' digits
        ("urbansound8k", 5, "1_0", r"'fold' must be an integer, got '1_0'"),
        ("urbansound8k", 5, "١", r"'fold' must be an integer"),
        ("urbansound8k", 5, "1e0", r"'fold' must be an integer"),
        ("urbansound8k", 5, "", r"empty field\(s\) \['fold'\]"),
    ],
)
def test_out_of_range_label_or_fold_names_the_line(tmp_path, rng, dataset, column, value, expected):
    root, meta, rows = (_esc50 if dataset == "esc50" else _us8k)(tmp_path, rng)
    rows[4][column] = value
    _write_rows(meta, rows)
    with pytest.raises(DataError, match=rf"line 5: .*{expected}"):
        open_dataset(name=dataset, root=root, params=make_params())


def test_test_fold_beyond_esc50s_five_folds_is_a_config_error(tmp_path, rng):
    root, _, _ = _esc50(tmp_path, rng)
    params = make_params(dataset="esc50", dataset_dir=str(root), split={"test_fold": 7})
    with pytest.raises(ConfigError, match=r"split.test_fold = 7, but dataset 'esc50' has 5 official folds"):
        prepare_audio(params=params, out_dir=tmp_path / "audio")


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda r: r[:7], r"line 4: missing field\(s\) \['class'\]"),
        (lambda r: [*r[:7], ""], r"line 4: empty field\(s\) \['class'\]"),
        (lambda r: [*r, "extra"], r"line 4: 9 fields; the header has 8"),
    ],
)
def test_short_long_or_empty_row_names_its_line(tmp_path, rng, edit, expected):
    root, meta, rows = _us8k(tmp_path, rng)
    rows[3] = edit(rows[3])
    _write_rows(meta, rows)
    with pytest.raises(DataError, match=expected):
        open_dataset(name="urbansound8k", root=root, params=make_params())


def test_line_numbers_count_blank_lines(tmp_path, rng):
    root, meta, rows = _esc50(tmp_path, rng)
    rows[5][2] = "x"
    text = meta.read_text().splitlines()
    meta.write_text("\n".join([*text[:3], "", *_csv_lines(rows[3:])]) + "\n")
    with pytest.raises(DataError, match=r"line 7: column 'target' must be an integer"):
        open_dataset(name="esc50", root=root, params=make_params())


def _csv_lines(rows):
    return [",".join(r) for r in rows]


# --- paths stay inside the dataset ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../../x.wav", "/etc/x.wav", "sub/x.wav", "..", "a\\b.wav"])
def test_file_name_that_is_not_a_bare_name(tmp_path, rng, name):
    root, meta, rows = _esc50(tmp_path, rng)
    rows[2][0] = name
    _write_rows(meta, rows)
    with pytest.raises(DataError, match=r"line 3: column 'filename' is .*expected a bare file name"):
        open_dataset(name="esc50", root=root, params=make_params())


def test_symlink_out_of_the_dataset_is_refused(tmp_path, rng):
    root, meta, rows = _esc50(tmp_path, rng)
    outside = tmp_path / "outside.wav"
    target = root / "audio" / rows[2][0]
    shutil.move(target, outside)
    target.symlink_to(outside)
    with pytest.raises(DataError, match=r"line 3: .* resolves to .*outside\.wav, outside dataset_dir"):
        open_dataset(name="esc50", root=root, params=make_params())


def test_metadata_symlinked_out_of_the_dataset_is_refused(tmp_path, rng):
    root, meta, _ = _esc50(tmp_path, rng)
    shutil.move(meta, tmp_path / "elsewhere.csv")
    meta.symlink_to(tmp_path / "elsewhere.csv")
    with pytest.raises(DataError, match=r"esc50\.csv resolves to .*elsewhere\.csv, outside dataset_dir"):
        open_dataset(name="esc50", root=root, params=make_params())


@pytest.mark.slow
def test_symlinks_into_dvcs_cache_are_allowed(tmp_path, rng):
    """`dvc checkout` with cache.type symlink links every tracked file into .dvc/cache."""
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    root, _, rows = _esc50(tmp_path / "data", rng)
    cache = tmp_path / ".dvc" / "cache" / "files" / "md5" / "ab"
    cache.mkdir(parents=True)
    target = root / "audio" / rows[2][0]
    shutil.move(target, cache / "cdef")
    target.symlink_to(cache / "cdef")
    assert len(open_dataset(name="esc50", root=root, params=make_params()).clips) == 10


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_non_regular_file_is_refused_or_skipped_without_blocking(tmp_path, rng, kind):
    root, _, rows = _esc50(tmp_path, rng)
    victim = root / "audio" / rows[2][0]
    victim.unlink()
    os.mkfifo(victim) if kind == "fifo" else victim.mkdir()
    params = make_params(dataset="esc50", dataset_dir=str(root))
    what = "a FIFO" if kind == "fifo" else "a folder"
    with pytest.raises(DataError, match=rf"{victim.name}: is {what}, not a regular file"):
        prepare_audio(params=params, out_dir=tmp_path / "a")
    skipping = make_params(dataset="esc50", dataset_dir=str(root), audio={"skip_bad_files": True})
    result = prepare_audio(params=skipping, out_dir=tmp_path / "b")
    assert [s.path.name for s in result.skipped] == [victim.name]


def test_prepare_never_writes_into_the_dataset(tmp_path, rng):
    root, _, _ = _esc50(tmp_path, rng)
    before = _tree_digest(root)
    prepare_audio(params=make_params(dataset="esc50", dataset_dir=str(root)), out_dir=tmp_path / "audio")
    assert _tree_digest(root) == before


# --- held-out trials that got through a first version -------------------------------------------------


@pytest.mark.parametrize("dataset", ["esc50", "urbansound8k"])
def test_a_source_id_with_a_leading_zero_is_the_same_source(tmp_path, rng, dataset):
    root, meta, rows = (_esc50 if dataset == "esc50" else _us8k)(tmp_path, rng)
    column, fold_column = (5, 1) if dataset == "esc50" else (1, 5)
    other = next(r for r in rows[1:] if r[fold_column] != rows[1][fold_column])
    other[column] = "0" + rows[1][column]  # same recording, spelled with a leading zero, in another fold
    if dataset == "esc50":
        renamed = f"{other[1]}-{other[5]}-{other[6]}-{other[2]}.wav"
        (root / "audio" / other[0]).rename(root / "audio" / renamed)
    else:
        renamed = f"{other[1]}-{other[6]}-0-7.wav"
        (root / "audio" / f"fold{other[5]}" / other[0]).rename(root / "audio" / f"fold{other[5]}" / renamed)
    other[0] = renamed
    _write_rows(meta, rows)
    with pytest.raises(DataError, match=rf"source '{int(rows[1][column])}' is in folds"):
        open_dataset(name=dataset, root=root, params=make_params())


def test_an_upper_case_extension_does_not_skip_the_name_check(tmp_path, rng):
    root, meta, rows = _us8k(tmp_path, rng)
    name = rows[1][0]
    upper = name[:-4] + ".WAV"
    (root / "audio" / f"fold{rows[1][5]}" / name).rename(root / "audio" / f"fold{rows[1][5]}" / upper)
    rows[1][0], rows[1][6], rows[1][7] = upper, "3", "dog_bark"  # the name still says its own classID
    _write_rows(meta, rows)
    with pytest.raises(DataError, match=r"line 2: file name .* says classID"):
        open_dataset(name="urbansound8k", root=root, params=make_params())


def test_a_repeated_header_column_is_refused(tmp_path, rng):
    root, meta, rows = _esc50(tmp_path, rng)
    _write_rows(meta, [[*rows[0], "fold"], *[[*r, "3"] for r in rows[1:]]])
    with pytest.raises(DataError, match=r"esc50\.csv, line 1: column\(s\) \['fold'\] appear more than once"):
        open_dataset(name="esc50", root=root, params=make_params())


def test_a_record_spanning_lines_is_named_by_its_first_line(tmp_path, rng):
    root, meta, rows = _esc50(tmp_path, rng)
    rows[2][3], rows[2][2] = "rain\nand more", "99"
    _write_rows(meta, rows)
    with pytest.raises(DataError, match=r"line 3: column 'target' is 99"):
        open_dataset(name="esc50", root=root, params=make_params())


@pytest.mark.parametrize("fmt", ["RF64", "W64", "AIFF"])
def test_truncated_file_in_another_container_behind_a_wav_name(tmp_path, rng, fmt):
    path = tmp_path / "clip.wav"
    sf.write(path, 0.3 * rng.uniform(-1, 1, 2 * 8000), 8000, format=fmt, subtype="PCM_16")
    load_wav(path, sample_rate=8000, n_samples=2 * 8000)  # complete: accepted
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"clip\.wav: truncated or corrupt: its header and its data disagree"):
        load_wav(path, sample_rate=8000, n_samples=2 * 8000)


def test_truncation_is_measured_in_frames_whatever_block_align_says(tmp_path, rng):
    path = tmp_path / "clip.wav"
    sf.write(path, 0.3 * rng.uniform(-1, 1, 8000), 8000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[32:34] = (1).to_bytes(2, "little")  # block_align 1 for 16-bit mono
    path.write_bytes(bytes(data[: 44 + 8000]))
    with pytest.raises(DataError, match=r"declares 1\.000 s .* holds 0\.500 s"):
        load_wav(path, sample_rate=8000, n_samples=8000)


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_metadata_that_is_not_a_regular_file(tmp_path, rng, kind):
    root, meta, _ = _esc50(tmp_path, rng)
    meta.unlink()
    os.mkfifo(meta) if kind == "fifo" else meta.mkdir()
    with pytest.raises(DataError, match=r"esc50\.csv: is a (FIFO|folder), not a regular file"):
        open_dataset(name="esc50", root=root, params=make_params())


def test_a_long_file_is_read_only_as_far_as_needed(tmp_path, rng, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, 0.3 * rng.uniform(-1, 1, 8000 * 90), 8000, subtype="PCM_16")  # 90 s
    frames_read = []
    real_read = sf.SoundFile.read
    monkeypatch.setattr(sf.SoundFile, "read", lambda self, *a, **k: frames_read.append(k["frames"]) or real_read(self, *a, **k))
    assert load_wav(path, sample_rate=8000, n_samples=8000).shape == (8000,)
    assert frames_read == [60 * 8000]


def test_a_class_only_in_the_test_fold_is_refused(tmp_path, rng):
    root, meta, rows = _esc50(tmp_path, rng)
    keep = [r for r in rows[1:] if not (r[2] == "1" and r[1] != "1")]  # 'rain' is left only in fold 1
    _write_rows(meta, [rows[0], *keep])
    params = make_params(dataset="esc50", dataset_dir=str(root), split={"test_fold": 1})
    with pytest.raises(DataError, match=r"class\(es\) \['rain'\] have test clips but no training clip"):
        prepare_audio(params=params, out_dir=tmp_path / "audio")
    assert not (tmp_path / "audio" / "clips").exists() and not list((tmp_path / "audio").glob(".clips.*"))


# --- a second round of held-out trials ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["１００１", "١٠٠١", "+1001", "1001.0", "0x3e9", "1001\u200b", "9" * 5000])
def test_a_source_id_that_is_not_ascii_digits_is_refused(tmp_path, rng, value):
    root, meta, rows = _us8k(tmp_path, rng)
    rows[3][1] = value
    _write_rows(meta, rows)
    with pytest.raises(DataError, match=r"line 4: column 'fsID' is .*expected a source id of ASCII digits"):
        open_dataset(name="urbansound8k", root=root, params=make_params())


@pytest.mark.parametrize("name", ["x.wav\x00", "x\n.wav", "1" * 5000])
def test_control_characters_and_absurd_numbers_in_a_row(tmp_path, rng, name):
    root, meta, rows = _esc50(tmp_path, rng)
    column = 0 if not name.isdigit() else 1
    rows[2][column] = name
    _write_rows(meta, rows)
    expected = "expected a bare file name" if column == 0 else "column 'fold' must be an integer"
    with pytest.raises(DataError, match=rf"line 3: .*{expected}"):
        open_dataset(name="esc50", root=root, params=make_params())


def test_one_category_under_two_targets_is_refused(tmp_path, rng):
    root, meta, rows = _esc50(tmp_path, rng)
    for r in rows[1:]:
        if r[2] == "1":
            r[3] = "dog"
    _write_rows(meta, rows)
    with pytest.raises(DataError, match=r"category 'dog' is label 1 here but 0 on line 2"):
        open_dataset(name="esc50", root=root, params=make_params())


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_synth_marker_that_is_not_a_regular_file(tmp_path, kind):
    from advaudio.config import SynthConfig
    from advaudio.data.synth import write_synth

    root = tmp_path / "synth"
    write_synth(out_dir=root, config=SynthConfig(n_classes=2, clips_per_class=4, clip_seconds=0.2, sample_rate=8000,
                                                 n_folds=2), seed=0, progress=False)
    marker = root / "meta" / "synth.json"
    marker.unlink()
    os.mkfifo(marker) if kind == "fifo" else marker.mkdir()
    with pytest.raises(DataError, match=r"synth\.json: is a (FIFO|folder), not a regular file"):
        open_dataset(name="synth", root=root, params=make_params())
