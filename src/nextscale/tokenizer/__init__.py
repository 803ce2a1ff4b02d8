"""nextscale.tokenizer: SAT, the scale-level audio tokenizer (SEANet + multi-scale residual quantization)."""
from __future__ import annotations

from .model import SAT, SATConfig, SATOutput
from .msrq import MSRQ, QuantizerOutput
from .published import convert_published_sat
from .schedules import make_schedule, num_frames_for

__all__ = ["SAT", "SATConfig", "SATOutput", "MSRQ", "QuantizerOutput", "convert_published_sat",
           "make_schedule", "num_frames_for"]
