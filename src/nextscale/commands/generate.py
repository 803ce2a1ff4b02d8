"""CLI: `nextscale generate` — prompts or class names → WAVs, spectrogram PNGs and settings.json."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def generate(
    prompt: Optional[str] = typer.Argument(None, help="Caption (text/CLAP pipelines) or class name (class pipelines)."),
    class_name: Optional[str] = typer.Option(None, "--class", help="Class name, for class-conditioned pipelines."),
    num: int = typer.Option(4, "-n", "--num", min=1, help="Clips to generate."),
    length: Optional[float] = typer.Option(None, "--seconds", help="Length of each clip (default: one window of the "
                                           "tokenizer). Longer clips are made window after window, which needs a "
                                           "model trained with context tokens."),
    overlap: Optional[int] = typer.Option(None, "--overlap", help="Latent frames neighbouring windows of a long clip "
                                          "share, crossfaded (0 = side by side; default: a sixth of a window)."),
    guidance: Optional[float] = typer.Option(None, "--cfg", help="Classifier-free guidance strength (0 = off). Sampling "
                                        "options left out take the model's own settings, else 4 / 200 / 0.95 / 1."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Keep the k most likely tokens (0 = all)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Nucleus sampling mass (1 = off)."),
    temperature: Optional[float] = typer.Option(None, "--temperature"),
    seed: int = typer.Option(0, "--seed"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", "--model", "-m", envvar="NEXTSCALE_PIPELINE",
                                              help="Pipeline directory, model name (nextscale models; default: the "
                                                   "shipped nextscale-synth-small) or hub id; env NEXTSCALE_PIPELINE."),
    out: Path = typer.Option(Path("generated"), "-o", "--out", help="Output directory."),
    previews: bool = typer.Option(False, "--previews", help="Also write a per-scale (coarse-to-fine) PNG per clip."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:i]."),
) -> None:
    """Generate audio from a caption or class name with a saved pipeline."""
    import time

    import torch
    from rich.console import Console
    from rich.table import Table

    from ..errors import NextscaleError
    from ..outputs import write_clips, write_settings
    from ..pipeline import Pipeline
    from ..runtime import resolve_device

    if prompt is None and class_name is None:
        raise NextscaleError("give a PROMPT or --class NAME")
    if prompt is not None and class_name is not None:
        raise NextscaleError("give either a PROMPT or --class NAME, not both")
    if checkpoint is None:
        from ..hub import DEFAULT_MODEL, shipped_models

        if DEFAULT_MODEL not in shipped_models():
            raise NextscaleError("no pipeline given: pass --model NAME (nextscale models) or --checkpoint DIR "
                                 "(or set NEXTSCALE_PIPELINE)")
        checkpoint = Path(DEFAULT_MODEL)
    dev = resolve_device(device)
    console = Console()
    with console.status(f"loading pipeline from {checkpoint}"):
        pipe = Pipeline.from_pretrained(checkpoint, device=dev)
    if class_name is not None and pipe.conditioner.kind != "class":
        raise NextscaleError(f"--class needs a class-conditioned pipeline; {checkpoint} is conditioned on "
                             f"{pipe.conditioner.kind!r} — pass the text as PROMPT instead")
    text = class_name if class_name is not None else prompt
    pipe.encode_condition([text])  # a bad class name fails here, before any sampling
    overlap = pipe.overlap_of(overlap)   # and an overlap the tokenizer's windows cannot take
    if length is not None:
        pipe.length_of(length, overlap=overlap)       # and a length the model cannot make

    sampling = pipe.sampling_settings(cfg=guidance, top_k=top_k, top_p=top_p, temperature=temperature)
    started = time.perf_counter()
    result = pipe.generate([text] * num, **sampling, seed=seed, batch_size=batch_size, previews=previews, progress=True,
                           seconds=length, overlap=overlap)
    seconds = time.perf_counter() - started
    audio = result.audio.cpu()
    if not torch.isfinite(audio).all():
        raise NextscaleError(f"the generated audio holds NaN/inf samples; the checkpoint {checkpoint} is broken")

    sr = pipe.sample_rate
    clips = write_clips(out, audio, sr, text, seed, result.previews if previews else None, scales=pipe.sat.scales)
    settings = write_settings(out, {
        "prompt": prompt, "class": class_name, "num": num, **sampling, "seed": seed, "batch_size": batch_size,
        "checkpoint": str(checkpoint), "device": str(dev), "conditioner": pipe.conditioner.to_config(),
        "ar_kind": pipe.ar.kind, "seconds": length, "overlap": overlap, "sample_rate": sr,
        "num_samples": int(audio.shape[-1]),
        "generation_seconds": round(seconds, 3), "files": clips,
    })
    table = Table(title=f"{num} clip(s) of {audio.shape[-1] / sr:.2f} s in {seconds:.2f} s → {out}")
    for column in ("wav", "peak", "rms", "pngs"):
        table.add_column(column, no_wrap=column == "wav", justify="right" if column in ("peak", "rms") else "left")
    for c in clips:
        table.add_row(c["wav"], f"{c['peak']:.3f}", f"{c['rms']:.3f}",
                      "spectrogram + scales" if "previews" in c else "spectrogram")
    console.print(table)
    console.print(f"settings: {settings}")


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the app."""
    app.command("generate")(generate)
