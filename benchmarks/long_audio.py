"""Long audio through SAT: seamless coding (codec over the whole file, MSRQ window by window) against
decoding every window on its own (the chunked way), and windows overlapping by O latent frames with their
latents crossfaded, measured at the joins.

    python benchmarks/long_audio.py                                  # recorded music + speech, shipped SAT
    python benchmarks/long_audio.py --tokenizer runs/sat/tokenizer --seconds 30 --overlap 12 FILE ...

For each file (the first `--seconds` of it) the join ratio of `nextscale.eval.joins` (log-mel change
across a window join over the change elsewhere; ~1 = joins not detectable) of the original at the
same positions, the seamless reconstruction (windows side by side) and the chunked one, plus the mel
distance to the original; with `--overlap O` > 0 (default: the pipeline's, 12 of 75 frames) also the
crossfaded reconstruction, its joins being the shared stretches (`ratio`) and their centres
(`ratio_centre`), with the original's figures at those positions. Writes RESULTS/long_audio_<device><tag>.json
and a spectrogram PNG around one join per file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

RESULTS = Path(__file__).resolve().parent / "results"
# recorded audio from the Debian packages of recorded_corpus.py (benchmarks only; tests never need them)
MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
DEFAULT_FILES = [MUSIC / name for name in ("battle.ogg", "defeat.ogg", "casualties_of_war.ogg", "breaking_the_chains.ogg")]
LOCAL_RECORDED_SAT = Path(__file__).resolve().parent / "runs" / "tq_recorded" / "sat-455-fourier" / "tokenizer"


def chunked_decode(sat, codes: list, length: int):
    """Every window decoded on its own and the pieces concatenated: what the codec CLI did before."""
    import torch

    windows = codes[0].shape[1] // sat.scales[0]
    pieces = [sat.decode([c[:, w * n:(w + 1) * n] for c, n in zip(codes, sat.scales)])[..., : sat.window_samples]
              for w in range(windows)]
    return torch.cat(pieces, dim=-1)[..., :length]


def reconstructions(sat, wav, overlap: int) -> dict:
    """(1, S) audio through `sat`: "seamless" (windows side by side, one decoder pass), "chunked" (each window
    decoded alone) and, for an overlap > 0, "crossfaded" (windows every T - overlap frames)."""
    import torch

    batch = wav[None].to(next(sat.parameters()).device)
    with torch.inference_mode():
        codes = sat.encode(batch)
        out = {"seamless": sat.decode(codes, length=wav.shape[-1]), "chunked": chunked_decode(sat, codes, wav.shape[-1])}
        if overlap:
            out["crossfaded"] = sat.decode(sat.encode(batch, overlap=overlap), length=wav.shape[-1], overlap=overlap)
    return {name: audio.cpu()[0] for name, audio in out.items()}


def file_row(sat, path: Path, wav, overlap: int) -> tuple[dict, dict]:
    """One file's figures: join ratios (and mel distance to the original) of every reconstruction, and of the
    original at the same joins; returns the row and the reconstructions."""
    from nextscale.eval.joins import join_discontinuity
    from nextscale.eval.recon import score_pair

    sr, window, shared = sat.sample_rate, sat.window_samples, overlap * sat.hop_length
    coded = reconstructions(sat, wav, overlap)
    row = {"file": str(path), "seconds": wav.shape[-1] / sr, "windows": sat.num_windows(wav.shape[-1]),
           "original": join_discontinuity(wav, sr, window)}
    if overlap:
        row |= {"overlap_frames": overlap, "windows_crossfaded": sat.num_windows(wav.shape[-1], overlap),
                "original_at_crossfades": join_discontinuity(wav, sr, window, shared)}
    for name, audio in coded.items():
        row[name] = join_discontinuity(audio, sr, window, shared if name == "crossfaded" else 0)
        row[name]["mel_distance"] = score_pair(wav, audio, sr)["mel_distance"]
    return row, coded


def main(files: list[Path] = typer.Argument(None, help="audio files (default: two recorded music tracks)"),
         tokenizer: str = typer.Option("", help="SAT model directory or name (default: the 30-min recorded-audio "
                                                "Fourier SAT of tokenizer_quality.py when present, else the "
                                                "shipped nextscale-synth-small's)"),
         seconds: float = typer.Option(20.0, help="seconds of each file to code"),
         overlap: Optional[int] = typer.Option(None, help="latent frames neighbouring windows share, crossfaded, for the "
                                                          "'crossfaded' reconstruction (default: the pipeline's, "
                                                          "12 of 75; 0: side by side only)"),
         offset: float = typer.Option(0.37, help="start this far into each file, so that the joins do not fall on "
                                                 "the whole seconds a track's own beat may fall on"),
         threads: int = typer.Option(2, help="torch intra-op threads"),
         device: str = typer.Option("cpu"),
         out: Path = typer.Option(RESULTS),
         tag: str = typer.Option("", help="appended to the results' file names")) -> None:
    """Seamless vs chunked (vs crossfaded) long-audio coding: join ratio and mel distance per file."""
    import torch

    from nextscale.ar.windows import default_overlap
    from nextscale.audio import load_audio
    from nextscale.bench.measure import machine_info, versions
    from nextscale.checkpoint import resolve_model_dir
    from nextscale.errors import DataError
    from nextscale.io import atomic_write_json
    from nextscale.pipeline import TOKENIZER_DIR
    from nextscale.plots import plot_comparison
    from nextscale.tokenizer.model import SAT

    torch.set_num_threads(threads)
    if not tokenizer:
        tokenizer = str(LOCAL_RECORDED_SAT if LOCAL_RECORDED_SAT.is_dir()
                        else resolve_model_dir("nextscale-synth-small") / TOKENIZER_DIR)
    sat = SAT.from_pretrained(tokenizer, map_location=device).eval()
    overlap = default_overlap(sat.num_frames) if overlap is None else overlap
    sat.layout(overlap)                                  # a bad overlap is named before any work
    sr = sat.sample_rate
    files = files or DEFAULT_FILES
    rows, plots = [], []
    for path in files:
        if not path.is_file():
            raise DataError(f"{path}: not found (the default files come from the Debian package wesnoth-1.16-music; "
                            f"`python benchmarks/recorded_corpus.py` installs it, or pass your own files)")
        wav = load_audio(path, sr)[..., int(offset * sr): int((offset + seconds) * sr)]
        row, coded = file_row(sat, path, wav, overlap)
        rows.append(row)
        print(json.dumps({k: {m: round(v, 3) for m, v in row[k].items()} if isinstance(row[k], dict) else row[k]
                          for k in row}), flush=True)
        join = sat.window_samples * (row["windows"] // 2)
        around = slice(join - sr // 4, join + sr // 4)
        plots.append((f"{path.stem} {join / sr:.0f} s", [x[..., around] for x in (wav, *coded.values())]))
    png = plot_comparison(plots, ["original", "seamless", "chunked", "crossfaded"][:len(plots[0][1])], sr,
                          out / f"long_audio_{device}{tag}_joins.png",
                          title="±0.25 s around a side-by-side window join: one pass, each window decoded alone "
                                "(chunked), windows crossfaded")
    report = {"benchmark": "long_audio", "tokenizer": tokenizer, "window_seconds": sat.window_samples / sr,
              "offset_seconds": offset, "overlap_frames": overlap,
              "metric": "join ratio: mean log-mel frame change (64 bands, 21 ms / 5 ms) across a window join over "
                        "the mean elsewhere; ~1 = joins not detectable",
              "target": "seamless join ratio within 1.2x of the change away from joins", "files": rows,
              "spectrograms": str(png),
              "machine": {"device": device, "threads": threads, **machine_info(torch.device(device))},
              "versions": versions()}
    path = out / f"long_audio_{device}{tag}.json"
    atomic_write_json(path, report)
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
