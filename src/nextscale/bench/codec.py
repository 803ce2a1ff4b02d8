"""Encode and decode time of a SAT, per second of audio: the suite's codec rows and `benchmarks/codec_speed.py`.

A codec's cost does not depend on its weights, so random ones do: a packaged config is built with
random weights and its codebooks seeded by one training-mode pass, as the first training step would.
"""
from __future__ import annotations

from typing import Any

import torch

from .measure import summarize, time_repeats


def random_codec(config: str, device: torch.device) -> Any:
    """The SAT of a packaged training config (e.g. "sat-tiny"), random weights, seeded codebooks, eval mode."""
    from ..tokenizer.model import SAT
    from ..train.tokenizer import load_sat_train_config

    torch.manual_seed(0)
    sat = SAT(load_sat_train_config(config).model).to(device)
    with torch.inference_mode():
        sat.train()(0.1 * torch.randn(8, 1, sat.clip_samples, device=device))
    return sat.eval()


def codec_times(sat: Any, batch: int, device: torch.device, warmup: int = 2, repeats: int = 7) -> dict[str, Any]:
    """Median encode and decode time of `batch` clips of one window each, and both per second of audio."""
    wav = 0.1 * torch.randn(batch, 1, sat.clip_samples, device=device)
    seconds = batch * sat.clip_samples / sat.sample_rate
    with torch.inference_mode():
        codes = sat.encode(wav)
        encode = summarize(time_repeats(lambda: sat.encode(wav), device, warmup, repeats))
        decode = summarize(time_repeats(lambda: sat.decode(codes), device, warmup, repeats))
    return {"codec": sat.config.codec, "parameters": sum(p.numel() for p in sat.parameters()), "batch": batch,
            "audio_seconds": seconds, "encode_s": encode["median_s"], "decode_s": decode["median_s"],
            "encode_s_per_audio_s": encode["median_s"] / seconds, "decode_s_per_audio_s": decode["median_s"] / seconds}
