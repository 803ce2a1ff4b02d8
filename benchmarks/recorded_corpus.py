"""Recorded-audio benchmark corpus, offline: 1-second 24 kHz mono clips from four Debian packages.

    python benchmarks/recorded_corpus.py                    # -> benchmarks/data/recorded/{train,heldout}.csv

Synthetic sounds say little about speech or music, and the benchmark machines reach no audio
data set, but Debian ships recorded audio. One package per kind (the manifest's `labels`):

    speech       fillets-ng-data-nl    Dutch voice-acted dialogue lines (ogg)
    music        wesnoth-1.16-music    orchestral game soundtrack (ogg, minutes long)
    instruments  sonic-pi-samples      instrument notes, drums and loops (flac)
    effects      openttd-opensfx       game sound effects, WAVs inside one .cat catalogue

Missing packages are installed with apt-get. Source files are split into train and held-out
*by file* (seeded), so no recording contributes to both. Crops start at seeded random offsets and
only the needed frames are decoded (long tracks are never read whole); crops quieter than
SILENCE_DBFS, or mostly silent (fewer than half their 20 ms frames above it), are skipped; each
file gives at most --max-clips-per-file clips so one long track cannot dominate its kind.
Sources shorter than a clip (most effects, short speech lines) are zero-padded at the end.
"""
from __future__ import annotations

import csv
import io
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import typer

from nextscale.errors import DataError

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "recorded"
SAMPLE_RATE = 24000
CLIP_SECONDS = 1.0
SILENCE_DBFS = -45.0
MIN_SOURCE_SECONDS = 0.3
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {      # kind -> (package, audio file suffixes)
    "speech": ("fillets-ng-data-nl", (".ogg",)),
    "music": ("wesnoth-1.16-music", (".ogg",)),
    "instruments": ("sonic-pi-samples", (".flac", ".wav")),
    "effects": ("openttd-opensfx", (".cat",)),
}


class CorpusError(DataError):
    """A problem the user must fix (no package could be installed, nothing usable was found)."""


# ---------------------------------------------------------------------- packages and sources
def ensure_package(package: str) -> bool:
    """Install `package` with apt-get when missing; False (with a message) when that fails."""
    if subprocess.run(["dpkg", "-s", package], capture_output=True).returncode == 0:
        return True
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    print(f"installing {package} …", flush=True)
    result = subprocess.run(install, capture_output=True, text=True)
    if result.returncode and "Unable to locate package" in result.stderr:
        subprocess.run(["apt-get", "update"], capture_output=True)
        result = subprocess.run(install, capture_output=True, text=True)
    if result.returncode:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        print(f"skipping {package}: `{' '.join(install)}` failed ({reason})", file=sys.stderr)
        return False
    return True


def package_files(package: str, suffixes: tuple[str, ...]) -> list[Path]:
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True).stdout.splitlines()
    return sorted(Path(p) for p in listing if p.lower().endswith(suffixes) and Path(p).is_file())


def catalogue_wavs(catalogue: Path) -> list[tuple[str, bytes]]:
    """(name, RIFF/WAV bytes) of each sound in an OpenTTD .cat catalogue.

    Layout: a table of (offset, size) little-endian uint32 pairs whose first offset also marks its
    end (so entries = first offset / 8); the top bit of an offset is a flag, not part of it. Each
    entry is a length-prefixed name, then a RIFF file.
    """
    data = catalogue.read_bytes()
    count = (int.from_bytes(data[:4], "little") & 0x7FFFFFFF) // 8
    sounds = []
    for i in range(count):
        offset = int.from_bytes(data[8 * i: 8 * i + 4], "little") & 0x7FFFFFFF
        name_length = data[offset]
        name = data[offset + 1: offset + 1 + name_length].rstrip(b"\0").decode("latin-1")
        riff = offset + 1 + name_length
        if data[riff: riff + 4] != b"RIFF":
            continue
        size = int.from_bytes(data[riff + 4: riff + 8], "little") + 8
        sounds.append((name or f"sound{i:03d}", data[riff: riff + size]))
    return sounds


def extract_catalogue(catalogue: Path, folder: Path) -> list[Path]:
    """Write the catalogue's sounds as WAV files (once) and return them."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, wav) in enumerate(catalogue_wavs(catalogue)):
        path = folder / f"{i:03d}_{re.sub(r'[^A-Za-z0-9]+', '_', name)[:40].strip('_')}.wav"
        if not path.is_file():
            try:
                sf.info(io.BytesIO(wav))
            except (sf.LibsndfileError, RuntimeError):
                continue
            path.write_bytes(wav)
        paths.append(path)
    return paths


def find_sources(kinds: list[str], out: Path) -> dict[str, list[Path]]:
    """Audio files per kind, installing packages as needed."""
    sources = {}
    for kind in kinds:
        package, suffixes = PACKAGES[kind]
        if not ensure_package(package):
            continue
        files = package_files(package, suffixes)
        if suffixes == (".cat",):
            files = [wav for cat in files for wav in extract_catalogue(cat, out / "sources" / kind)]
        if files:
            sources[kind] = files
        else:
            print(f"skipping {kind}: {package} holds no {'/'.join(suffixes)} files", file=sys.stderr)
    return sources


# ---------------------------------------------------------------------- clips
def split_files(files: list[Path], heldout_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Seeded split by source file; both sides keep at least one file when there are two or more."""
    order = sorted(files)
    random.Random(seed).shuffle(order)
    n_held = min(len(order) - 1, max(1, round(heldout_fraction * len(order)))) if len(order) > 1 else 0
    return order[n_held:], order[:n_held]


def loud_enough(clip: np.ndarray, sample_rate: int = SAMPLE_RATE, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    """RMS above the threshold, and at least half of the 20 ms frames of the real audio above it too."""
    if clip.size == 0:
        return False
    level = 20 * np.log10(np.sqrt(np.mean(clip ** 2)) + 1e-12)
    frame = sample_rate // 50
    frames = clip[: clip.size // frame * frame].reshape(-1, frame)
    if len(frames) == 0:
        return level > threshold_dbfs
    frame_levels = 20 * np.log10(np.sqrt(np.mean(frames ** 2, axis=1)) + 1e-12)
    return level > threshold_dbfs and np.mean(frame_levels > threshold_dbfs) >= 0.5


def crops(path: Path, rng: random.Random, max_clips: int, tries: int = 3) -> list[np.ndarray]:
    """Up to `max_clips` loud 1-second crops (24 kHz mono) at seeded random offsets, decoded by seeking."""
    import soundfile as sf

    from nextscale.audio import load_audio
    from nextscale.errors import AudioError

    try:
        seconds = sf.info(str(path)).duration
    except (sf.LibsndfileError, RuntimeError) as e:
        print(f"skipping {path}: unreadable ({e})", file=sys.stderr)
        return []
    if seconds < MIN_SOURCE_SECONDS:
        return []
    slots = max(1, int(seconds // CLIP_SECONDS))
    starts = [0.0] if seconds <= CLIP_SECONDS else rng.sample(
        [s * (seconds - CLIP_SECONDS) / max(1, slots - 1) for s in range(slots)], min(slots, max_clips * tries))
    clips = []
    for start in starts:
        try:
            real = load_audio(path, SAMPLE_RATE, offset=start, duration=min(CLIP_SECONDS, seconds - start))[0].numpy()
        except AudioError as e:
            print(f"skipping a crop of {path}: {e}", file=sys.stderr)
            continue
        if not loud_enough(real):
            continue
        length = int(CLIP_SECONDS * SAMPLE_RATE)
        clips.append(np.pad(real[:length], (0, max(0, length - real.size))))
        if len(clips) == max_clips:
            break
    return clips


def build_split(files: list[Path], kind: str, count: int, folder: Path, seed: int, max_per_file: int
                ) -> list[dict[str, str]]:
    """`count` clips of one kind, taken round-robin over its files, written as 16-bit WAVs."""
    from nextscale.audio import save_audio

    rng = random.Random(seed)
    pools: dict[Path, list[np.ndarray]] = {}       # a file is decoded only when the round reaches it
    rows: list[dict[str, str]] = []
    progressed = True
    while len(rows) < count and progressed:
        progressed = False
        for path in files:
            if len(rows) == count:
                break
            if path not in pools:
                pools[path] = crops(path, rng, max_per_file)
            pool = pools[path]
            if pool:
                name = f"{kind}/{kind}_{len(rows):04d}.wav"
                save_audio(folder / name, pool.pop(0), SAMPLE_RATE)
                rows.append({"path": name, "labels": kind, "source": str(path)})
                progressed = True
    return rows


def write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    from nextscale.io import atomic_write_bytes

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["path", "labels", "source"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def build_corpus(sources: dict[str, list[Path]], out: Path, clips_per_kind: int, heldout_per_kind: int, seed: int,
                 max_clips_per_file: int, heldout_fraction: float = 0.2) -> dict[str, dict]:
    """Write OUT/{train,heldout}/<kind>/*.wav and OUT/{train,heldout}.csv; returns a summary per kind."""
    import soundfile as sf

    manifests: dict[str, list[dict[str, str]]] = {"train": [], "heldout": []}
    summary = {}
    for k, (kind, files) in enumerate(sorted(sources.items())):
        train_files, held_files = split_files(files, heldout_fraction, seed + k)
        start = time.perf_counter()
        train = build_split(train_files, kind, clips_per_kind, out / "train", seed + 100 + k, max_clips_per_file)
        held = build_split(held_files, kind, heldout_per_kind, out / "heldout", seed + 200 + k, max_clips_per_file)
        manifests["train"] += train
        manifests["heldout"] += held
        summary[kind] = {"package": PACKAGES[kind][0], "files": len(files), "train_files": len(train_files),
                         "heldout_files": len(held_files), "train_clips": len(train), "heldout_clips": len(held),
                         "source_seconds": round(sum(sf.info(str(f)).duration for f in files), 1),
                         "build_seconds": round(time.perf_counter() - start, 1)}
        print(f"{kind:12s} {summary[kind]}", flush=True)
    for split, rows in manifests.items():
        write_manifest(out / f"{split}.csv", [r | {"path": f"{split}/{r['path']}"} for r in rows])
    return summary


def main(out: Path = typer.Option(DEFAULT_OUT, help="corpus folder"),
         clips_per_kind: int = typer.Option(200, min=1, help="training clips per kind"),
         heldout_per_kind: int = typer.Option(32, min=1, help="held-out clips per kind"),
         max_clips_per_file: int = typer.Option(8, min=1, help="at most this many clips from one source file"),
         kinds: str = typer.Option(",".join(PACKAGES), help="comma-separated subset of " + ", ".join(PACKAGES)),
         seed: int = typer.Option(0)) -> None:
    """Build the corpus (or say it is already built with these settings)."""
    from nextscale.io import atomic_write_json

    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in PACKAGES]
    if unknown:
        raise CorpusError(f"--kinds: unknown {', '.join(unknown)}; choose from {', '.join(PACKAGES)}")
    settings = {"clips_per_kind": clips_per_kind, "heldout_per_kind": heldout_per_kind, "kinds": chosen,
                "max_clips_per_file": max_clips_per_file, "seed": seed, "sample_rate": SAMPLE_RATE,
                "clip_seconds": CLIP_SECONDS, "silence_dbfs": SILENCE_DBFS}
    summary_path = out / "summary.json"
    if summary_path.is_file() and json.loads(summary_path.read_text()).get("settings") == settings:
        print(f"{out}: already built with these settings (train.csv, heldout.csv); delete it to rebuild")
        return
    sources = find_sources(chosen, out)
    if not sources:
        raise CorpusError("no kind is available: every package failed to install (see the messages above)")
    summary = build_corpus(sources, out, clips_per_kind, heldout_per_kind, seed, max_clips_per_file)
    atomic_write_json(summary_path, {"settings": settings, "kinds": summary})
    print(f"wrote {out / 'train.csv'} and {out / 'heldout.csv'}")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
