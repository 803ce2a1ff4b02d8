"""CLI: `nextscale encode | decode | reconstruct` with a SAT checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

CHECKPOINT_HELP = "SAT model directory, hub id, or a published SAT .pth"
OVERLAP_HELP = ("latent frames neighbouring windows share, crossfaded when decoding (0..T/2; 0: side by side; "
                "the code file records it)")


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the app."""

    @app.command()
    def encode(
        audio: Path = typer.Argument(..., help="audio file to encode"),
        output: Path = typer.Option(..., "-o", "--output", help="codes file to write (.safetensors)"),
        checkpoint: str = typer.Option(..., "--checkpoint", help=CHECKPOINT_HELP),
        overlap: int = typer.Option(0, "--overlap", help=OVERLAP_HELP),
        device: str = typer.Option("auto", help="auto, cpu or cuda"),
    ) -> None:
        """Encode audio of any length into SAT codes (one row per window of the model's clip length)."""
        from ..audio import load_audio
        from ..runtime import resolve_device
        from ..tokenizer.codec_io import encode_audio, load_sat, save_codes

        sat = load_sat(checkpoint, resolve_device(device))
        wav = load_audio(audio, sample_rate=sat.sample_rate)
        codes = encode_audio(sat, wav, overlap)
        save_codes(output, sat, codes, wav.shape[-1], overlap)
        typer.echo(f"wrote {output}: {codes[0].shape[0]} window(s) x {sat.num_tokens} tokens "
                   f"({sat.num_scales} scales)")

    @app.command()
    def decode(
        codes_file: Path = typer.Argument(..., help="codes file written by `nextscale encode`"),
        output: Path = typer.Option(..., "-o", "--output", help="audio file to write"),
        checkpoint: str = typer.Option(..., "--checkpoint", help=CHECKPOINT_HELP),
        scales: Optional[int] = typer.Option(None, "--scales", help="decode only the first K scales (coarse preview)"),
        device: str = typer.Option("auto", help="auto, cpu or cuda"),
    ) -> None:
        """Decode SAT codes back to audio; --scales K previews from the first K scales."""
        from ..audio import save_audio
        from ..errors import ConfigError
        from ..runtime import resolve_device
        from ..tokenizer.codec_io import decode_codes, load_codes, load_sat

        sat = load_sat(checkpoint, resolve_device(device))
        stored = load_codes(codes_file, sat)
        codes = stored.codes
        if scales is not None and not 1 <= scales <= len(codes):
            raise ConfigError(f"--scales: must be in 1..{len(codes)}, got {scales}")
        audio = decode_codes(sat, codes[: scales or len(codes)], stored.num_samples, stored.overlap)
        save_audio(output, audio, sat.sample_rate)
        typer.echo(f"wrote {output} ({audio.shape[-1] / sat.sample_rate:.2f} s from {scales or len(codes)} scales)")

    @app.command()
    def reconstruct(
        source: Path = typer.Argument(..., help="audio file or folder"),
        output: Path = typer.Option(..., "-o", "--output", help="output file, or folder when SOURCE is a folder"),
        checkpoint: str = typer.Option(..., "--checkpoint", help=CHECKPOINT_HELP),
        scales: Optional[int] = typer.Option(None, "--scales", help="reconstruct from the first K scales only"),
        overlap: int = typer.Option(0, "--overlap", help=OVERLAP_HELP),
        device: str = typer.Option("auto", help="auto, cpu or cuda"),
    ) -> None:
        """Encode and decode audio (a file, or every audio file below a folder, mirrored as .wav)."""
        from tqdm import tqdm

        from ..errors import ConfigError
        from ..runtime import resolve_device
        from ..tokenizer.codec_io import audio_files, load_sat, reconstruct_file

        sat = load_sat(checkpoint, resolve_device(device))
        if scales is not None and not 1 <= scales <= sat.num_scales:
            raise ConfigError(f"--scales: must be in 1..{sat.num_scales}, got {scales}")
        sat.layout(overlap)          # a bad overlap fails here, before any file is read
        files = audio_files(source)
        if source.is_file():
            reconstruct_file(sat, source, output, scales, overlap)
            typer.echo(f"wrote {output}")
            return
        for path in tqdm(files, desc="reconstruct", unit="file"):
            reconstruct_file(sat, path, (output / path.relative_to(source)).with_suffix(".wav"), scales, overlap)
        typer.echo(f"wrote {len(files)} file(s) to {output}")
