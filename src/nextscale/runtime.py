"""Device, precision and seeding helpers shared by training, generation and benchmarks."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' → cuda when available, else cpu; a clear error when cuda is asked for but absent."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from .errors import NextscaleError

        raise NextscaleError("device 'cuda' was requested but no CUDA GPU is visible to torch; pass --device cpu")
    return dev


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX): there bf16 autocast runs matmuls
    and convolutions ~2-3x faster than fp32; elsewhere it is emulated and slower."""
    caps = getattr(torch.cpu, "get_capabilities", dict)()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast on CUDA ('auto' or 'bf16') and on CPU when asked for ('bf16'); a no-op context otherwise.

    CPU 'auto' stays fp32: bf16 pays off only on CPUs with native bf16 (`cpu_has_native_bf16`), so a CPU
    run opts in, as the demo does on such a CPU."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
