"""Long generated audio judged window by window: class consistency, joins, and cost per second.

Window-by-window generation can drift away from its condition, and its windows can fail to
join. Three figures catch that: the classifier's accuracy on each window of the long clips
against the condition (vs the same model's one-window clips), the join ratio of `eval.joins`
(real audio scores ~1), and the generation time per second of audio vs the one-window case.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .joins import join_discontinuity


def window_accuracy(backend: Any, audio: torch.Tensor, labels: Sequence[int]) -> list[float]:
    """(N, 1, W * window) audio -> for each window w, the share of clips the classifier puts in their class.

    The backend (the `synth` classifier) scores one window per row, clip after clip.
    """
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    if audio.dim() != 3 or audio.shape[0] != labels_t.numel():
        raise ConfigError(f"window_accuracy: expected (N, 1, S) audio for {labels_t.numel()} labels, "
                          f"got {tuple(audio.shape)}")
    probs = backend.probabilities(backend.embed(audio))
    predicted = probs.view(audio.shape[0], -1, probs.shape[-1]).argmax(-1)
    return (predicted == labels_t[:, None]).float().mean(0).tolist()


def join_ratios(audio: torch.Tensor, sample_rate: int, window_samples: int, overlap_samples: int = 0) -> dict[str, Any]:
    """Join ratio of every clip (N, 1, S) made of windows `overlap_samples` apart: their mean and median,
    and the mean of the ratio at the crossfades' centres (`eval.joins`; the same figure without overlap)."""
    joins = [join_discontinuity(clip, sample_rate, window_samples, overlap_samples) for clip in audio]
    ratios = [j["ratio"] for j in joins]
    return {"mean": float(np.nanmean(ratios)), "median": float(np.nanmedian(ratios)),
            "centre_mean": float(np.nanmean([j["ratio_centre"] for j in joins])),
            "per_clip": [round(r, 4) for r in ratios]}


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def interleaved_times(runs: dict[str, Any], repeats: int) -> tuple[dict[str, Any], dict[str, float]]:
    """Time every run `repeats` times, taking turns, and keep each one's fastest time with its output.

    On a shared machine the load changes from minute to minute; one run after the other would
    charge the change to whichever ran in the busier minute, taking turns and the minimum does not.
    """
    outputs, best = {}, {name: float("inf") for name in runs}
    for _ in range(max(1, repeats)):
        for name, fn in runs.items():
            outputs[name], seconds = timed(fn)
            best[name] = min(best[name], seconds)
    return outputs, best


def per_audio_second(seconds: float, audio: torch.Tensor, sample_rate: int) -> float:
    """Seconds it took to make a batch (N, 1, S), per second of the audio in it."""
    return seconds / (audio.shape[0] * audio.shape[-1] / sample_rate)


def clip_figures(pipe: Any, backend: Any, clips: torch.Tensor, labels: Sequence[int], seconds_taken: float,
                 overlap: int, one_window_accuracy: float, one_window_per_second: float) -> dict[str, Any]:
    """The figures of one batch of long clips (N, 1, S) made with windows `overlap` latent frames apart, in
    `seconds_taken`: per-window accuracy (and its ratios to the one-window accuracy), joins, and cost per
    second of audio (and its ratio to the one-window cost)."""
    sr, hop = pipe.sample_rate, pipe.sat.hop_length
    per_window = window_accuracy(backend, clips, labels)
    per_second = per_audio_second(seconds_taken, clips, sr)
    one = one_window_accuracy
    return {"overlap_frames": overlap, "generated_windows": pipe.sat.num_windows(clips.shape[-1], overlap),
            "accuracy_per_window": per_window, "accuracy_long_mean": float(np.mean(per_window)),
            "accuracy_ratio_worst_window": min(per_window) / one if one > 0 else float("nan"),
            "accuracy_ratio_mean": float(np.mean(per_window)) / one if one > 0 else float("nan"),
            "join_ratio": join_ratios(clips, sr, pipe.sat.window_samples, overlap * hop),
            "seconds_per_audio_second_long": per_second, "cost_ratio": per_second / one_window_per_second}


def long_form_figures(pipe: Any, backend: Any, prompts: Sequence[str], seconds: float, seed: int = 0,
                      batch_size: int = 64, overlap: int = 0, repeats: int = 1,
                      **sampling: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Generate `prompts` as one window and as `seconds` window by window (windows `overlap` latent frames
    apart, crossfaded), and, as the chunked floor, with independent windows side by side (with an overlap,
    also the long clips side by side, and independent windows crossfaded: what the crossfade does without
    the context); returns the figures and the audio {"one_window", "long", "independent"(, "side_by_side",
    "independent_crossfaded")}.

    Timings cover generation and decoding of each batch, the fastest of `repeats` interleaved turns (see
    `interleaved_times`), so `cost_ratio` is the time per second of audio of the long clips, the overlap's
    extra windows included, over that of one window, measured in the same minutes as the side-by-side one.
    """
    classes = pipe.conditioner.classes
    labels = [classes.index(p) for p in prompts]
    window, sr, hop = pipe.sat.window_samples, pipe.sample_rate, pipe.sat.hop_length
    common = dict(seed=seed, batch_size=batch_size, progress=False, **sampling)
    pipe.generate(prompts[:1], **common)                                   # warm-up, not timed
    runs = {"one_window": lambda: pipe.generate(prompts, **common).audio,
            "long": lambda: pipe.generate(prompts, seconds=seconds, overlap=overlap, **common).audio}
    if overlap:
        runs["side_by_side"] = lambda: pipe.generate(prompts, seconds=seconds, overlap=0, **common).audio
    audio, times = interleaved_times(runs, repeats)
    audio["independent"] = pipe.generate(prompts, seconds=seconds, independent_windows=True, overlap=0, **common).audio
    one = window_accuracy(backend, audio["one_window"], labels)[0]
    per_second_short = per_audio_second(times["one_window"], audio["one_window"], sr)

    def long_figures(name: str, frames: int) -> dict[str, Any]:
        figures = clip_figures(pipe, backend, audio[name], labels, times[name], frames, one, per_second_short)
        figures["join_ratio_context"] = figures.pop("join_ratio")
        return figures

    long = long_figures("long", overlap)
    figures = {
        "seconds": seconds, "windows": len(long["accuracy_per_window"]), "clips": len(prompts),
        "accuracy_one_window": one, **long,
        "join_ratio_independent_windows": join_ratios(audio["independent"], sr, window),
        "accuracy_independent_mean": float(np.mean(window_accuracy(backend, audio["independent"], labels))),
        "seconds_per_audio_second_one_window": per_second_short,
        "timing": {"repeats": repeats} | {f"{name}_s": t for name, t in times.items()},
    }
    if overlap:
        figures["side_by_side"] = long_figures("side_by_side", 0)
        audio["independent_crossfaded"] = pipe.generate(prompts, seconds=seconds, independent_windows=True,
                                                        overlap=overlap, **common).audio
        figures["join_ratio_independent_crossfaded"] = join_ratios(audio["independent_crossfaded"], sr, window,
                                                                   overlap * hop)
    return figures, audio


def independent_window_figures(pipe: Any, backend: Any, prompts: Sequence[str], seconds: float, seed: int = 0,
                               batch_size: int = 64, overlap: int = 0, repeats: int = 1,
                               **sampling: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Long clips from a model without window context: each window made alone, crossfaded over `overlap`
    frames, against the same prompts as one window; returns the figures of `clip_figures` (plus the
    one-window accuracy and cost, and with an overlap `join_ratio_side_by_side`, the same windows'
    joins without it) and the audio {"one_window", "long"(, "side_by_side")}.

    What a single-window model (the demo's) gives for long audio today, so the report can show its
    joins, its per-window class accuracy and its cost per second next to the one-window figures; both
    batches timed in interleaved turns (`interleaved_times`) so machine load falls on both alike.
    """
    labels = [pipe.conditioner.classes.index(p) for p in prompts]
    common = dict(seed=seed, batch_size=batch_size, progress=False, **sampling)
    pipe.generate(prompts[:1], **common)                                   # warm-up, not timed
    audio, times = interleaved_times({
        "one_window": lambda: pipe.generate(prompts, **common).audio,
        "long": lambda: pipe.generate(prompts, seconds=seconds, independent_windows=True, overlap=overlap,
                                      **common).audio}, repeats)
    one = window_accuracy(backend, audio["one_window"], labels)[0]
    per_second_short = per_audio_second(times["one_window"], audio["one_window"], pipe.sample_rate)
    figures = clip_figures(pipe, backend, audio["long"], labels, times["long"], overlap, one, per_second_short)
    if overlap:
        audio["side_by_side"] = pipe.generate(prompts, seconds=seconds, independent_windows=True, overlap=0,
                                              **common).audio
        figures["join_ratio_side_by_side"] = join_ratios(audio["side_by_side"], pipe.sample_rate,
                                                         pipe.sat.window_samples)
    return {"seconds": seconds, "clips": len(prompts), "accuracy_one_window": one,
            "seconds_per_audio_second_one_window": per_second_short, **figures,
            "timing": {"repeats": repeats} | {f"{name}_s": t for name, t in times.items()}}, audio


@torch.inference_mode()
def coded_joins(sat: Any, audio: torch.Tensor, overlaps: Sequence[int],
                batch_size: int = 4) -> tuple[dict[str, Any], dict[int, torch.Tensor]]:
    """Real clips (N, 1, S) encoded and decoded by `sat` at each overlap (one codec pass each) -> the join
    ratios of the reconstructions, keyed "overlap_<o>" (do the tokenizer's own window joins show?), and the
    reconstructions {o: (N, 1, S)} on the CPU."""
    figures, coded = {}, {}
    for overlap in overlaps:
        coded[overlap] = torch.cat([sat.decode(sat.encode(audio[i:i + batch_size], overlap=overlap), audio.shape[-1],
                                               overlap=overlap) for i in range(0, len(audio), batch_size)]).float().cpu()
        figures[f"overlap_{overlap}"] = join_ratios(coded[overlap], sat.sample_rate, sat.window_samples,
                                                    overlap * sat.hop_length)
    return figures, coded
