"""Manifest, folder and AudioSet datasets on tiny generated fixtures; crops; DataLoader workers;
DistributedSampler; DataConfig / build_dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader, DistributedSampler

from nextscale.config import load_config
from nextscale.data import (AudioSetDataset, DataConfig, DataWarning, FolderDataset, ManifestDataset, SynthDataset,
                            build_dataset, collate_batch)
from nextscale.errors import ConfigError, DataError

SR = 24000


def ramp_file(path, seconds, sr=SR, channels=1):
    """Sample value = time in the file / 100 s, so a crop reveals where it was taken from."""
    t = np.arange(int(seconds * sr)) / sr
    x = (t / 100.0).astype(np.float32)
    subtype = "FLOAT" if str(path).endswith(".wav") else None  # FLAC/OGG: their default subtypes
    sf.write(path, np.repeat(x[:, None], channels, 1) if channels > 1 else x, sr, subtype=subtype)
    return path


def start_of(item, sr=SR):
    return float(item["audio"][0, 0]) * 100.0


@pytest.fixture
def files(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    paths = {"a": ramp_file(audio / "a.wav", 3.0), "b": ramp_file(audio / "b.flac", 0.5, sr=48000),
             "c": ramp_file(audio / "c.wav", 2.0, channels=2)}
    (audio / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    return paths


def write_manifest(tmp_path, name, rows):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        cols = sorted({k for r in rows for k in r}, key=["path", "caption", "labels", "start", "duration"].index)
        path.write_text(",".join(cols) + "\n" + "".join(",".join(f'"{r.get(c, "")}"' for c in cols) + "\n" for r in rows))
    return path


ROWS = [{"path": "audio/a.wav", "caption": "a ramp", "labels": "dog;bark", "start": 1.0, "duration": 1.5},
        {"path": "audio/b.flac", "caption": "short", "labels": "cat"},
        {"path": "audio/c.wav", "labels": "bark, dog"},
        {"path": "audio/broken.wav", "caption": "bad"}]


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl"])
def test_manifest_items_labels_segments_and_padding(tmp_path, files, monkeypatch, name):
    rows = [dict(r, labels=r["labels"].replace(" ", "").split(";" if ";" in r["labels"] else ","))
            if name.endswith(".jsonl") and "labels" in r else r for r in ROWS]
    manifest = write_manifest(tmp_path, name, rows)
    monkeypatch.chdir(tmp_path / "audio")  # relative paths resolve against the manifest, not the cwd
    with pytest.warns(DataWarning, match="broken.wav"):
        ds = ManifestDataset(manifest, clip_seconds=1.0, random_crop=False)
    assert len(ds) == 3 and [p for p, _ in ds.skipped] == [str(files["a"].parent / "broken.wav")]
    assert ds.classes == ["bark", "cat", "dog"]
    a, b, c = ds[0], ds[1], ds[2]
    assert a["labels"] == ["dog", "bark"] and a["label"] == 2 and a["caption"] == "a ramp"
    assert a["path"] == str(files["a"]) and a["audio"].shape == (1, SR)
    assert start_of(a) == pytest.approx(1.0, abs=1e-6)  # the segment start, not the file start
    assert b["label"] == 1 and b["audio"].shape == (1, SR)
    assert float(b["audio"][0, 12010:].abs().max()) == 0.0 and float(b["audio"][0, 11000]) > 0  # 0.5 s + padding
    assert c["labels"] == ["bark", "dog"] and c["label"] == 0 and c["caption"] == ""


def test_random_crops_stay_inside_the_segment_and_follow_the_torch_seed(tmp_path, files):
    manifest = write_manifest(tmp_path, "m.jsonl", [ROWS[0]])
    ds = ManifestDataset(manifest, clip_seconds=0.5, random_crop=True)
    torch.manual_seed(0)
    starts = [start_of(ds[0]) for _ in range(30)]
    assert all(1.0 - 1e-4 <= s <= 2.0 + 1e-4 for s in starts)  # segment 1.0–2.5 s, clip 0.5 s
    assert np.std(starts) > 0.1
    torch.manual_seed(0)
    assert [start_of(ds[0]) for _ in range(30)] == starts


def test_whole_segments_without_clip_seconds(tmp_path, files):
    manifest = write_manifest(tmp_path, "m.jsonl", ROWS[:2])
    ds = ManifestDataset(manifest, clip_seconds=None)
    assert ds[0]["audio"].shape == (1, int(1.5 * SR)) and ds[1]["audio"].shape == (1, SR // 2)
    with pytest.raises(DataError, match="different shapes"):
        collate_batch([ds[0], ds[1]])


def test_folder_dataset_is_recursive_and_labels_by_subfolder(tmp_path):
    for cls in ("dog", "cat"):
        (tmp_path / cls / "deep").mkdir(parents=True)
        ramp_file(tmp_path / cls / "x.wav", 1.0)
        ramp_file(tmp_path / cls / "deep" / "y.ogg", 1.0)
    ramp_file(tmp_path / "top.wav", 1.0)
    (tmp_path / "readme.txt").write_text("ignored")
    ds = FolderDataset(tmp_path, random_crop=False)
    assert len(ds) == 5 and ds.classes == ["cat", "dog"]
    by_name = {ds[i]["path"].split("/")[-1]: ds[i] for i in range(len(ds))}
    assert by_name["y.ogg"]["labels"] in (["cat"], ["dog"]) and by_name["top.wav"]["label"] == -1
    assert FolderDataset(tmp_path, labels_from_folders=False).classes == []


def audioset_fixture(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    ramp_file(clips / "abcdefghijk.wav", 10.0, sr=16000)              # bare YTID, already the 10 s segment
    ramp_file(clips / "-_x-_y-_z01_30.000.wav", 10.0)                # YTID with '-' and '_' + start
    ramp_file(clips / f"Y{'z' * 11}.flac", 40.0, sr=8000)              # bare, the whole video: crop 20–30 s
    (clips / "broken0000_0.wav").write_text("not audio")              # <YTID>_<start>_<end> variant, corrupt
    csv = tmp_path / "segments.csv"
    csv.write_text("# Segments csv created Sun Mar  5 10:54:31 2017\n"
                   "# num_ytids=5, num_segs=5, num_unique_labels=3, num_positive_labels=6\n"
                   "# YTID, start_seconds, end_seconds, positive_labels\n"
                   'abcdefghijk, 0.000, 10.000, "/m/dog,/m/bark"\n'
                   '-_x-_y-_z01, 30.000, 40.000, "/m/cat"\n'
                   f'{"z" * 11}, 20.000, 30.000, "/m/bark"\n'
                   'broken0000, 0.000, 10.000, "/m/cat"\n'
                   'missing0000, 0.000, 10.000, "/m/dog"\n')
    classes = tmp_path / "class_labels_indices.csv"
    classes.write_text('index,mid,display_name\n0,/m/cat,"Cat"\n1,/m/dog,"Dog"\n2,/m/bark,"Bark, yip"\n')
    return csv, clips, classes


def test_audioset_segments_map_to_clips_with_class_names(tmp_path):
    csv, clips, classes = audioset_fixture(tmp_path)
    with pytest.warns(DataWarning) as record:
        ds = AudioSetDataset(csv, clips, classes, clip_seconds=1.0, random_crop=False)
    assert len(ds) == 3 and len(ds.skipped) == 2 and len(record) == 1
    assert ds.classes == ["Cat", "Dog", "Bark, yip"]
    reasons = " | ".join(r for _, r in ds.skipped)
    assert "no clip for missing0000" in reasons and "not a readable audio file" in reasons
    items = {ds[i]["path"].split("/")[-1]: ds[i] for i in range(3)}
    assert items["abcdefghijk.wav"]["labels"] == ["Dog", "Bark, yip"] and items["abcdefghijk.wav"]["label"] == 1
    assert start_of(items["abcdefghijk.wav"]) == pytest.approx(0.0, abs=1e-3)
    assert items["-_x-_y-_z01_30.000.wav"]["label"] == 0
    assert start_of(items[f"Y{'z' * 11}.flac"]) == pytest.approx(20.0, abs=1e-2)  # cut from the whole video
    with pytest.warns(DataWarning):
        raw = AudioSetDataset(csv, clips, clip_seconds=1.0)
    assert raw.classes == ["/m/bark", "/m/cat", "/m/dog"]


def test_dataloader_with_two_workers_returns_every_item(tmp_path):
    ds = SynthDataset(24, seed=3)
    loader = DataLoader(ds, batch_size=5, num_workers=2, collate_fn=collate_batch)
    batches = list(loader)
    labels = torch.cat([b["label"] for b in batches])
    assert labels.tolist() == [i % 12 for i in range(24)]
    assert batches[0]["audio"].shape == (5, 1, SR) and isinstance(batches[0]["caption"], list)
    torch.testing.assert_close(batches[1]["audio"][0], ds[5]["audio"])  # workers render the same clips


def test_file_dataset_in_worker_processes(tmp_path, files):
    manifest = write_manifest(tmp_path, "m.jsonl", ROWS[:3])
    ds = ManifestDataset(manifest, random_crop=False)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_batch)
    paths = [p for batch in loader for p in batch["path"]]
    assert paths == [str(files[k]) for k in "abc"]


def test_distributed_sampler_partitions_the_dataset():
    ds = SynthDataset(25, seed=0)
    parts = [list(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=1)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == 13
    assert set(parts[0]) | set(parts[1]) == set(range(25))
    assert len(set(parts[0]) & set(parts[1])) == 1  # one index repeated to even out 25 over 2 ranks
    assert ds[parts[1][0]]["label"] == parts[1][0] % 12


def test_build_dataset_splits_files_disjointly_and_stably(tmp_path):
    for i in range(20):
        ramp_file(tmp_path / f"f{i:02d}.wav", 0.2)
    cfg = DataConfig(source="folder", path=str(tmp_path), heldout_n=5, clip_seconds=0.2)
    train, heldout = build_dataset(cfg, "train"), build_dataset(cfg, "heldout")
    train_paths, held_paths = {e.path for e in train.entries}, {e.path for e in heldout.entries}
    assert len(held_paths) == 5 and len(train_paths) == 15 and not train_paths & held_paths
    assert not heldout.random_crop and train.random_crop
    ramp_file(tmp_path / "zz_new.wav", 0.2)  # adding a file never moves an existing one into the other split
    assert train_paths <= {e.path for e in build_dataset(cfg, "train").entries} | {str(tmp_path / "zz_new.wav")}
    assert len(build_dataset(DataConfig(source="folder", path=str(tmp_path), heldout_fraction=0.25), "heldout")) == 5


def test_split_keeps_both_sides_non_empty_for_tiny_datasets():
    from nextscale.data.entries import Entry, split_entries

    entries = [Entry(path=f"/x/{i}.wav", key=f"{i}.wav") for i in range(4)]
    assert len(split_entries(entries, "heldout", heldout_fraction=0.1)) == 1  # rounds up to one file
    assert len(split_entries(entries, "train", heldout_n=10)) == 1  # never all of them
    with pytest.raises(DataError, match="held-out split is empty"):
        split_entries(entries[:1], "heldout", heldout_fraction=0.5)


def test_build_dataset_synth_heldout_comes_from_another_seed():
    cfg = DataConfig(n=24, seed=0, heldout_n=12)
    train, heldout = build_dataset(cfg, "train"), build_dataset(cfg, "heldout")
    assert len(train) == 24 and len(heldout) == 12
    assert not torch.equal(train[0]["audio"], heldout[0]["audio"]) and heldout[0]["label"] == 0
    with pytest.raises(DataError, match="held-out split is empty"):
        build_dataset(DataConfig(n=24, heldout_fraction=0.0), "heldout")


def test_build_dataset_manifest_and_audioset(tmp_path, files):
    manifest = write_manifest(tmp_path, "m.csv", ROWS[:3])
    ds = build_dataset(DataConfig(source="manifest", path=str(manifest), heldout_fraction=0.0))
    assert len(ds) == 3
    csv, clips, classes = audioset_fixture(tmp_path)
    with pytest.warns(DataWarning):
        ds = build_dataset(DataConfig(source="audioset", path=str(csv), audio_dir=str(clips), class_csv=str(classes),
                                      heldout_fraction=0.0))
    assert len(ds) == 3 and ds.classes[0] == "Cat"


@pytest.mark.parametrize("data,match", [
    ({"source": "manifest"}, "data.path: required"),
    ({"source": "audioset", "path": "x.csv"}, "data.audio_dir: required"),
    ({"source": "wav"}, "source"),
    ({"clip_seconds": 0}, "data.clip_seconds: must be positive"),
    ({"heldout_fraction": 1.5}, "data.heldout_fraction"),
    ({"clip_secs": 1.0}, "did you mean 'clip_seconds'"),
    ({"n": "many"}, "expected an integer"),
])
def test_data_config_validation_names_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        load_config({"data": data}, DataConfig, section="data")


def test_data_config_from_yaml_with_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("model: {}\ndata:\n  source: synth\n  n: 48\n")
    cfg = load_config(path, DataConfig, overrides=["clip_seconds=0.5"], section="data")
    assert (cfg.n, cfg.clip_seconds) == (48, 0.5)
    assert build_dataset(cfg)[0]["audio"].shape == (1, SR // 2)
    # the section may be named in an override or not, with a whole config or a bare data mapping
    for source in (path, {"source": "synth", "n": 48}):
        assert load_config(source, DataConfig, overrides=["data.n=8"], section="data").n == 8


def test_audioset_malformed_rows_are_named_and_an_empty_list_stops(tmp_path):
    from nextscale.data.audioset import read_segments

    csv = tmp_path / "seg.csv"
    csv.write_text('# YTID, start_seconds, end_seconds, positive_labels\nabcdefghijk, 0.0, 10.0, "/m/a,/m/b"\n'
                   'short, 1.0\nxyz, ten, 20, "/m/a"\nrev, 5.0, 5.0, "/m/a"\n')
    segments, bad = read_segments(csv)
    assert [(s.ytid, s.mids) for s in segments] == [("abcdefghijk", ("/m/a", "/m/b"))]
    assert [where.split()[-1] for where, _ in bad] == ["3", "4", "5"]
    csv.write_text("# only comments\n")
    with pytest.raises(DataError, match="seg.csv: no AudioSet segments"):
        read_segments(csv)
