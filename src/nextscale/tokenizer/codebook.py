"""One EMA codebook: nearest-neighbour lookup, k-means init, EMA updates, dead-code re-seeding.

The codebook is not trained by gradients: its entries follow an exponential moving average of
the vectors assigned to them (van den Oord et al., EnCodec). Buffer names (`embed`, `embed_avg`,
`cluster_size`, `inited`) match the published SAT so its checkpoints load by a key rename.

Under torch.distributed the statistics are summed over ranks, and the random choices (k-means
seeds, re-seeded vectors) are made on rank 0 from the gathered batch and broadcast, so N ranks
with batch B/N behave exactly like one process with batch B.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _gather_rows(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows, in rank order (the global batch when ranks hold consecutive slices)."""
    if not _distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, 0)


def _broadcast_(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.broadcast(t, src=0)
    return t


def sample_rows(samples: torch.Tensor, num: int) -> torch.Tensor:
    """`num` rows of `samples`: without replacement when there are enough, else with."""
    n = samples.shape[0]
    if n >= num:
        index = torch.randperm(n, device=samples.device)[:num]
    else:
        index = torch.randint(0, n, (num,), device=samples.device)
    return samples[index]


def squared_distance_scores(x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    """-(||x||^2 - 2 x.e + ||e||^2) for every (row, entry): argmax is the nearest entry.

    Written in exactly this form because codes must match the published model bit for bit,
    and a near-tie can flip under another (mathematically equal) formula.
    """
    e_t = embed.t()
    return -(x.pow(2).sum(1, keepdim=True) - 2 * x @ e_t + e_t.pow(2).sum(0, keepdim=True))


def kmeans(samples: torch.Tensor, num_clusters: int, num_iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means seeded from random samples; empty clusters keep their previous centre."""
    dim = samples.shape[-1]
    means = sample_rows(samples, num_clusters)
    bins = torch.zeros(num_clusters, dtype=torch.long, device=samples.device)
    for _ in range(num_iters):
        buckets = squared_distance_scores(samples, means).max(dim=-1).indices
        bins = torch.bincount(buckets, minlength=num_clusters)
        sums = torch.zeros(num_clusters, dim, dtype=samples.dtype, device=samples.device)
        sums.index_add_(0, buckets, samples)
        empty = bins == 0
        means = torch.where(empty[:, None], means, sums / bins.clamp(min=1)[:, None].to(samples.dtype))
    return means, bins


class EMACodebook(nn.Module):
    """V entries of dimension C, updated by EMA (decay, Laplace smoothing epsilon)."""

    dead_share = 0.1   # an entry used less than this fraction of its fair share per step counts as dead

    def __init__(self, dim: int, size: int = 1024, decay: float = 0.99, epsilon: float = 1e-5,
                 dead_threshold: float = 2.0, kmeans_iters: int = 50):
        super().__init__()
        self.dim, self.size = dim, size
        self.decay, self.epsilon = decay, epsilon
        self.dead_threshold, self.kmeans_iters = dead_threshold, kmeans_iters
        # Zeros until k-means on the first training batch fills them (`inited` flips to 1).
        self.register_buffer("inited", torch.zeros(1))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Indices (...,) of the nearest entries for vectors x (..., C)."""
        flat = x.reshape(-1, self.dim)
        return squared_distance_scores(flat, self.embed).max(dim=-1).indices.view(x.shape[:-1])

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        """Entries for integer indices: (...,) -> (..., C)."""
        return F.embedding(index, self.embed)

    @torch.no_grad()
    def init_from_batch(self, x: torch.Tensor) -> None:
        """k-means on the (global) batch; computed on rank 0 and broadcast so ranks agree."""
        samples = _gather_rows(x.reshape(-1, self.dim).detach().float())
        means, bins = kmeans(samples, self.size, self.kmeans_iters)
        means, bins = _broadcast_(means.contiguous()), _broadcast_(bins.to(means.dtype))
        self.embed.copy_(means)
        self.embed_avg.copy_(means)
        self.cluster_size.copy_(bins)
        self.inited.fill_(1.0)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, index: torch.Tensor) -> None:
        """EMA of counts and sums of the assigned vectors, then re-seed dead entries.

        Dead entries get a random batch vector, and their `embed_avg` is set so the next
        normalisation keeps that vector. (The published EnCodec-style code replaces `embed` first
        and then overwrites it with the EMA normalisation, which undoes the re-seeding; this is
        the intended behaviour.) An entry is dead when its EMA count is below `dead_threshold`,
        or below a tenth of its fair share of this step's vectors when that is smaller: a coarse
        scale sees only B * n_k vectors a step (8 for batch 8 at n_1 = 1), so an absolute
        threshold of 2 would call every entry dead and replace the whole codebook by batch
        vectors at every step, a codebook that fits each training batch and no other.
        """
        flat = x.reshape(-1, self.dim).detach().float()
        onehot = F.one_hot(index.reshape(-1), self.size).to(flat.dtype)
        counts = _all_reduce_sum(onehot.sum(0))
        sums = _all_reduce_sum(onehot.t() @ flat)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        smoothed = self.smoothed_cluster_size()
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        fair_share = float(counts.sum()) / self.size
        dead = self.cluster_size < min(self.dead_threshold, self.dead_share * fair_share)
        if self.dead_threshold > 0 and bool(dead.any()):
            samples = _gather_rows(flat)
            fresh = _broadcast_(sample_rows(samples, self.size).contiguous())
            self.embed.copy_(torch.where(dead[:, None], fresh, self.embed))
            self.embed_avg.copy_(torch.where(dead[:, None], fresh * smoothed[:, None], self.embed_avg))

    def smoothed_cluster_size(self) -> torch.Tensor:
        """Laplace-smoothed counts, so an unused entry never divides by zero."""
        n = self.cluster_size.sum()
        return (self.cluster_size + self.epsilon) / (n + self.size * self.epsilon) * n
