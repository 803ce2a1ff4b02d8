"""Deterministic data order: the batch of step s is a pure function of (seed, s).

Epoch e shuffles with a generator seeded from (seed, e); step s reads global batch
s mod (N // global_batch) of epoch s // (N // global_batch). A resumed run therefore sees
exactly the batches an uninterrupted run would, with no sampler state to save, and rank r of
W takes the r-th contiguous slice of the global batch (what the distributed codebook updates
assume when they gather the global batch in rank order).
"""
from __future__ import annotations

import itertools
from typing import Iterator

import torch

from ..errors import DataError


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    def __init__(self, num_items: int, global_batch: int, seed: int, start_step: int, total_steps: int | None,
                 rank: int = 0, world_size: int = 1):
        """total_steps None: batches until the loop stops (a run with a time budget)."""
        if global_batch % world_size:
            raise DataError(f"train.batch_size {global_batch} must be divisible by the number of ranks {world_size}")
        if num_items < global_batch:
            raise DataError(f"the dataset has {num_items} items, fewer than one global batch of {global_batch}; "
                            "lower train.batch_size or add data")
        self.num_items, self.global_batch, self.seed = num_items, global_batch, seed
        self.start_step, self.total_steps = start_step, total_steps
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = num_items // global_batch
        self._perm: tuple[int, torch.Tensor] | None = None

    def permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.num_items, generator=g))
        return self._perm[1]

    def batch_indices(self, step: int) -> list[int]:
        """This rank's item indices for training step `step`."""
        epoch, within = divmod(step, self.batches_per_epoch)
        per_rank = self.global_batch // self.world_size
        start = within * self.global_batch + self.rank * per_rank
        return self.permutation(epoch)[start:start + per_rank].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        steps = itertools.count(self.start_step) if self.total_steps is None else range(self.start_step, self.total_steps)
        for step in steps:
            yield self.batch_indices(step)

    def __len__(self) -> int:
        if self.total_steps is None:
            raise TypeError("a sampler without total_steps has no length: its run stops by the clock")
        return max(0, self.total_steps - self.start_step)
