"""nextscale.tokenizer: SAT, the scale-level audio tokenizer (SEANet + multi-scale residual quantization)."""
from __future__ import annotations

from .msrq import MSRQ, QuantizerOutput
from .schedules import make_schedule, num_frames_for

__all__ = ["MSRQ", "QuantizerOutput", "make_schedule", "num_frames_for"]
