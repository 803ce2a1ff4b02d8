"""DDP plumbing for `torchrun`: process group from env vars, rank-aware helpers.

Nothing home-made: torchrun starts the processes and sets RANK / WORLD_SIZE / LOCAL_RANK; we
open the process group (gloo on CPU, nccl on GPU) with a timeout so a rank that dies makes the
others fail instead of waiting forever, and torchrun then tears the job down with its error.
"""
from __future__ import annotations

import dataclasses
import datetime
import inspect
import os
from typing import Any

import torch
import torch.distributed as dist

from ..errors import ConfigError
from ..runtime import resolve_device


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only the main rank writes checkpoints, logs and samples."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_s: float = 600.0) -> DistInfo:
    """Join the torchrun job described by the environment, or run as a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if world <= 1:
        return DistInfo(device=dev)
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local_rank, dev)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _active():
        dist.barrier()


def all_ranks_true(flag: bool, device: torch.device) -> bool:
    """True only if `flag` is true on every rank (so all ranks skip a bad step together)."""
    if not _active():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0)


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics over ranks (the global-batch figure a single process would log)."""
    if not _active() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def main_rank_value(value: float, device: torch.device) -> float:
    """Rank 0's `value` on every rank (e.g. its clock, so all ranks set the same learning rate and stop together)."""
    if not _active():
        return value
    t = torch.tensor([float(value)], device=device, dtype=torch.float64)
    dist.broadcast(t, src=0)
    return float(t.item())


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a single-element list without DDP)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap_ddp(module: torch.nn.Module, info: DistInfo, find_unused_parameters: bool = True) -> torch.nn.Module:
    """DistributedDataParallel around `module` when running on several ranks, else the module itself.

    Unused parameters are looked for by default: e.g. the AR null-condition embedding gets no
    gradient in a step where condition dropout drops nothing.
    """
    if not info.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    # Buffers (EMA codebooks) are kept in sync by their own all-reduces, not re-broadcast every forward.
    sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(
        DistributedDataParallel.__init__).parameters else {"broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters, **sync)
