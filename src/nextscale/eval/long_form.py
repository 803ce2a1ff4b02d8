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
    per_second_short = times["one_window"] / (len(prompts) * audio["one_window"].shape[-1] / sr)

    def long_figures(name: str, frames: int) -> dict[str, Any]:
        clips = audio[name]
        per_window = window_accuracy(backend, clips, labels)
        per_second = times[name] / (len(prompts) * clips.shape[-1] / sr)
        return {"overlap_frames": frames, "generated_windows": pipe.sat.num_windows(clips.shape[-1], frames),
                "accuracy_per_window": per_window, "accuracy_long_mean": float(np.mean(per_window)),
                "accuracy_ratio_worst_window": min(per_window) / one if one > 0 else float("nan"),
                "accuracy_ratio_mean": float(np.mean(per_window)) / one if one > 0 else float("nan"),
                "join_ratio_context": join_ratios(clips, sr, window, frames * hop),
                "seconds_per_audio_second_long": per_second, "cost_ratio": per_second / per_second_short}

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
