"""benchmarks/recorded_corpus.py without the Debian packages: catalogue parsing, silence rules,
the by-file split and the written manifests, on small files made here."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nextscale.audio import load_audio
from nextscale.data.manifest import read_manifest
from bench_scripts import load_script

corpus = load_script("recorded_corpus")


def tone(seconds: float, rate: int = 22050, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_catalogue_entries_come_back_as_wavs(tmp_path):
    sounds = [(b"Bell. By someone", wav_bytes(tone(0.5, 11025), 11025)), (b"Horn", wav_bytes(tone(1.2, 22050), 22050))]
    header = 8 * len(sounds)
    table, body, offset = b"", b"", header
    for name, wav in sounds:
        entry = bytes([len(name)]) + name + wav
        table += (offset | 0x80000000).to_bytes(4, "little") + len(entry).to_bytes(4, "little")   # top bit: a flag
        body += entry
        offset += len(entry)
    cat = tmp_path / "sounds.cat"
    cat.write_bytes(table + body)
    entries = corpus.catalogue_wavs(cat)
    assert [n for n, _ in entries] == ["Bell. By someone", "Horn"]
    assert [round(sf.info(io.BytesIO(w)).duration, 2) for _, w in entries] == [0.5, 1.2]
    files = corpus.extract_catalogue(cat, tmp_path / "out")
    assert [f.name for f in files] == ["000_Bell_By_someone.wav", "001_Horn.wav"]


def test_loudness_rules():
    assert corpus.loud_enough(tone(1.0, 24000))
    assert not corpus.loud_enough(np.zeros(24000, dtype=np.float32))
    assert not corpus.loud_enough(tone(1.0, 24000, amplitude=0.003))                 # -53 dBFS
    mostly_silent = np.concatenate([tone(0.3, 24000), np.zeros(16800, dtype=np.float32)])
    assert not corpus.loud_enough(mostly_silent)                                        # RMS passes, frames do not


def test_split_is_by_file_seeded_and_keeps_both_sides():
    files = [Path(f"f{i}.ogg") for i in range(10)]
    train, held = corpus.split_files(files, 0.2, seed=3)
    assert len(held) == 2 and not set(train) & set(held) and set(train) | set(held) == set(files)
    assert corpus.split_files(list(reversed(files)), 0.2, seed=3) == (train, held)
    assert corpus.split_files([Path("only.ogg")], 0.2, seed=3) == ([Path("only.ogg")], [])


def test_built_corpus_has_labelled_one_second_clips_and_no_shared_sources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sources = {"music": [], "effects": []}
    for i in range(4):                       # long tracks: several crops each, decoded by seeking
        path = src / f"track{i}.ogg"
        sf.write(path, tone(6.0, 44100, 220.0 * (i + 1)), 44100, format="OGG", subtype="VORBIS")
        sources["music"].append(path)
    for i in range(3):                       # short effects, zero-padded to a clip
        path = src / f"fx{i}.wav"
        sf.write(path, tone(0.5, 11025, 1000.0 + 100 * i), 11025)
        sources["effects"].append(path)
    silent = src / "silent.wav"
    sf.write(silent, np.zeros(48000, dtype=np.float32), 24000)
    sources["effects"].append(silent)

    summary = corpus.build_corpus(sources, tmp_path / "out", clips_per_kind=6, heldout_per_kind=2, seed=0,
                                  max_clips_per_file=2, heldout_fraction=0.25)
    assert summary["music"]["train_clips"] == 6 and summary["music"]["heldout_clips"] == 2
    splits = {name: read_manifest(tmp_path / "out" / f"{name}.csv").entries for name in ("train", "heldout")}
    for entries in splits.values():
        for entry in entries:
            wav = load_audio(entry.path, 24000)
            assert wav.shape == (1, 24000)
            assert entry.labels[0] in ("music", "effects")
    rows = {name: [line.split(",")[2] for line in (tmp_path / "out" / f"{name}.csv").read_text().splitlines()[1:]]
            for name in ("train", "heldout")}
    assert not set(rows["train"]) & set(rows["heldout"])
    assert str(silent) not in rows["train"] + rows["heldout"]
    # at most two crops per source file
    assert max(rows["train"].count(s) for s in set(rows["train"])) <= 2


def test_unknown_kind_is_a_clear_error(tmp_path):
    with pytest.raises(corpus.CorpusError, match="unknown podcasts"):
        corpus.main(out=tmp_path, clips_per_kind=1, heldout_per_kind=1, max_clips_per_file=1, kinds="podcasts", seed=0)
