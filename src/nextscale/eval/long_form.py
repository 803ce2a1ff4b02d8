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


def join_ratios(audio: torch.Tensor, sample_rate: int, window_samples: int) -> dict[str, Any]:
    """Join ratio of every clip (N, 1, S), and their mean and median."""
    ratios = [join_discontinuity(clip, sample_rate, window_samples)["ratio"] for clip in audio]
    return {"mean": float(np.nanmean(ratios)), "median": float(np.nanmedian(ratios)),
            "per_clip": [round(r, 4) for r in ratios]}


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def long_form_figures(pipe: Any, backend: Any, prompts: Sequence[str], seconds: float, seed: int = 0,
                      batch_size: int = 64, **sampling: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Generate `prompts` as one window and as `seconds` window by window (and, as the chunked floor, with
    independent windows); returns the figures and the audio {"one_window", "long", "independent"}.

    Timings cover generation and decoding of each batch, so `cost_ratio` is the time per second of audio
    of the long clips over that of one window.
    """
    classes = pipe.conditioner.classes
    labels = [classes.index(p) for p in prompts]
    window = pipe.sat.window_samples
    sr = pipe.sample_rate
    common = dict(seed=seed, batch_size=batch_size, progress=False, **sampling)
    pipe.generate(prompts[:1], **common)                                   # warm-up, not timed
    short, t_short = timed(lambda: pipe.generate(prompts, **common).audio)
    long, t_long = timed(lambda: pipe.generate(prompts, seconds=seconds, **common).audio)
    independent = pipe.generate(prompts, seconds=seconds, independent_windows=True, **common).audio
    per_window = window_accuracy(backend, long, labels)
    one = window_accuracy(backend, short, labels)[0]
    per_second_short = t_short / (len(prompts) * short.shape[-1] / sr)
    per_second_long = t_long / (len(prompts) * long.shape[-1] / sr)
    figures = {
        "seconds": seconds, "windows": len(per_window), "clips": len(prompts),
        "accuracy_one_window": one, "accuracy_per_window": per_window,
        "accuracy_long_mean": float(np.mean(per_window)),
        "accuracy_ratio_worst_window": min(per_window) / one if one > 0 else float("nan"),
        "accuracy_ratio_mean": float(np.mean(per_window)) / one if one > 0 else float("nan"),
        "join_ratio_context": join_ratios(long, sr, window),
        "join_ratio_independent_windows": join_ratios(independent, sr, window),
        "accuracy_independent_mean": float(np.mean(window_accuracy(backend, independent, labels))),
        "seconds_per_audio_second_one_window": per_second_short,
        "seconds_per_audio_second_long": per_second_long,
        "cost_ratio": per_second_long / per_second_short,
    }
    return figures, {"one_window": short, "long": long, "independent": independent}
