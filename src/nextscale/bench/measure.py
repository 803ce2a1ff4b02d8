"""Measurement primitives for the speed benchmark: timing, peak memory, machine facts, the floor.

Kept apart from the model-building harness (`bench/generation.py`) so each can be checked on its own:
the timing is synchronised (CUDA events on GPU), memory peaks are reset per setting, and the
floor is a closed form a test can verify by hand.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import torch

from ..runtime import cpu_has_native_bf16

# Peak memory bandwidth (bytes/s) of GPUs whose figure is published, matched against
# torch.cuda.get_device_name(); the first matching substring wins, so specific names come first.
KNOWN_BANDWIDTH: list[tuple[str, float]] = [
    ("H200", 4.8e12),
    ("H100 NVL", 3.9e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),          # SXM5 (torch reports "NVIDIA H100 80GB HBM3")
    ("GH200", 4.0e12),
    ("B200", 8.0e12),
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100", 1.555e12),         # the 40 GB parts, SXM and PCIe
    ("L40S", 0.864e12),
    ("L4", 0.3e12),
    ("A10G", 0.6e12),
    ("A10", 0.6e12),
    ("RTX 4090", 1.008e12),
    ("RTX 3090", 0.936e12),
    ("V100", 0.9e12),
    ("T4", 0.32e12),
]


# Dense (no sparsity) bf16 tensor-core peak FLOP/s, matched like KNOWN_BANDWIDTH. Only bf16: fp32 peaks
# depend on whether TF32 is on, and CPUs have no published figure that fits every SKU, so MFU there is unknown.
KNOWN_PEAK_BF16_FLOPS: list[tuple[str, float]] = [
    ("H200", 989e12),
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),           # SXM5
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),           # SXM and PCIe, 40 and 80 GB
    ("L40S", 362e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),       # with fp32 accumulation
    ("RTX 3090", 71e12),
]


def _lookup(table: list[tuple[str, float]], device_name: str) -> float | None:
    for key, value in table:
        if key.lower() in device_name.lower():
            return value
    return None


def known_bandwidth(device_name: str) -> float | None:
    """Published peak memory bandwidth for a GPU name, or None (CPUs and unknown GPUs)."""
    return _lookup(KNOWN_BANDWIDTH, device_name)


def known_peak_flops(device_name: str, precision: str) -> float | None:
    """Published dense peak FLOP/s of a GPU at `precision` ("bf16"), or None (unknown: CPUs, fp32, unlisted GPUs)."""
    return _lookup(KNOWN_PEAK_BF16_FLOPS, device_name) if precision == "bf16" else None


def _cpu_attention_flops() -> dict[Any, Callable[..., int]]:
    """torch's counter knows the GPU attention kernels; the CPU flash kernel gets the same formulas here."""
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    def forward(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
        return sdpa_flop_count(query, key, value)

    def backward(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
        return sdpa_backward_flop_count(grad_out, query, key, value)

    aten = torch.ops.aten
    table: dict[Any, Callable[..., int]] = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        table[aten._scaled_dot_product_flash_attention_for_cpu] = forward
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        table[aten._scaled_dot_product_flash_attention_for_cpu_backward] = backward
    return table


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matrix products and attention `fn` runs (forward and, if it calls backward, backward).

    Elementwise work is not counted, the usual convention for MFU. Run `fn` eagerly: compiled regions and
    FlexAttention are not all counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_cpu_attention_flops()) as counter:
        fn()
    return int(counter.get_total_flops())


def floor_seconds(bytes_per_step: float, steps: int, bandwidth: float | None) -> float | None:
    """Lower bound of a latency-bound generation: every step must stream the weights once."""
    if bandwidth is None or bandwidth <= 0:
        return None
    return bytes_per_step * steps / bandwidth


def weight_bytes_per_step(model: torch.nn.Module, bytes_per_element: int) -> int:
    """Bytes of weights one step reads: every parameter except embedding tables (only rows are gathered).

    Counts AdaLN projections too, as the published d16 floor (16 × 615 MB per step) does; a model that computes its
    modulation once per clip reads slightly less, so the floor stays a true lower bound up to that.
    """
    skipped = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in skipped) * bytes_per_element


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of one call, measured after every queued kernel has finished."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_repeats(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int,
                 budget_s: float | None = None, min_repeats: int = 3) -> list[float]:
    """Warm up, then time up to `repeats` calls; a time budget trims repeats of slow settings."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = [time_call(fn, device)]
    if budget_s is not None and times[0] > 0:
        repeats = min(repeats, max(min_repeats, int(budget_s / times[0])))
    while len(times) < repeats:
        times.append(time_call(fn, device))
    return times


def time_interleaved(fns: Sequence[Callable[[], Any]], device: torch.device, warmup: int,
                     rounds: int) -> list[list[float]]:
    """Time several calls in turn, round after round, one list of times per call. A shared VM's speed
    drifts by tens of percent over minutes; interleaved, every call sees the same drift, so their ratio
    holds where two settings timed minutes apart would not."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for out, fn in zip(times, fns):
            out.append(time_call(fn, device))
    return times


def summarize(times: list[float]) -> dict[str, float]:
    """Median and interquartile range (robust to the odd slow run on a shared machine)."""
    median = statistics.median(times)
    if len(times) >= 2:
        q = statistics.quantiles(times, n=4, method="inclusive")
        iqr = q[2] - q[0]
    else:
        iqr = 0.0
    return {"median_s": median, "iqr_s": iqr, "min_s": min(times), "max_s": max(times)}


class PeakMemory:
    """Peak memory of one setting: CUDA max allocated, or the process's peak RSS on CPU.

    On Linux the RSS high-water mark is reset per setting through /proc/self/clear_refs, so the
    figure belongs to this setting (plus the resident baseline); elsewhere it is the process peak.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.kind = "cpu_process_peak_rss"

    def read(self) -> int | None:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            import resource

            scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
            return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale
        except (ImportError, OSError):
            return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    """Facts a reader needs to compare figures across machines."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        # two VMs can both say "AMD EPYC" and train at 2x apart: the vector unit and native bf16 tell them apart
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "gpu": None,
        "gpu_memory_bytes": None,
        "memory_bandwidth_bytes_per_s": None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_bytes=int(props.total_memory),
                    gpu_capability=f"{props.major}.{props.minor}",
                    memory_bandwidth_bytes_per_s=known_bandwidth(props.name))
    return info


def versions() -> dict[str, Any]:
    from .. import __version__

    return {
        "nextscale": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
    }
