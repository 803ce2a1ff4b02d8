"""MSRQ: codebook maths against hand computations, encode against an independent float64
re-implementation, and the AR helpers against encode's own step-by-step construction."""
from __future__ import annotations

import copy

import math
import os
import socket

import numpy as np
import pytest
import torch

from nextscale.errors import ConfigError
from nextscale.tokenizer.codebook import EMACodebook
from nextscale.tokenizer.msrq import MSRQ, phi_assignment


def _ready(q: MSRQ, seed: int = 0) -> MSRQ:
    """Give every codebook random entries, as if k-means had run."""
    g = torch.Generator().manual_seed(seed)
    for book in q.codebooks:
        book.embed.copy_(torch.randn(book.embed.shape, generator=g))
        book.embed_avg.copy_(book.embed)
        book.cluster_size.fill_(5.0)
        book.inited.fill_(1.0)
    for p in q.parameters():
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return q.eval()


# ---- float64 reference of the published algorithm, written from the formulas -------------
def ref_area(x: np.ndarray, n: int) -> np.ndarray:
    T = x.shape[1]
    return np.stack([x[:, (i * T) // n: -((-(i + 1) * T) // n)].mean(1) for i in range(n)], 1)


def ref_linear(x: np.ndarray, T: int) -> np.ndarray:
    n = x.shape[1]
    if n == T:
        return x
    out = np.empty((x.shape[0], T))
    for j in range(T):
        src = max((j + 0.5) * n / T - 0.5, 0.0)
        i0 = int(math.floor(src))
        i1 = min(i0 + 1, n - 1)
        w = src - i0
        out[:, j] = (1 - w) * x[:, i0] + w * x[:, i1]
    return out


def ref_phi(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, ratio: float) -> np.ndarray:
    C, T = x.shape
    k = weight.shape[-1]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p)))
    conv = np.stack([bias + np.einsum("ocj,cj->o", weight, xp[:, t:t + k]) for t in range(T)], 1)
    return (1 - ratio) * x + ratio * conv


def ref_encode(q: MSRQ, z: np.ndarray):
    """(D, T) -> codes per scale, f_hat (C, T) and the AR inputs, all in float64."""
    W = q.proj_in.weight.detach().double().numpy()
    b = q.proj_in.bias.detach().double().numpy()
    r = W @ z + b[:, None]
    T = r.shape[1]
    f_hat = np.zeros_like(r)
    codes, inputs = [], []
    for k, n in enumerate(q.scales):
        E = q.codebooks[k].embed.detach().double().numpy()
        target = ref_area(r, n)
        d = ((target.T[:, None, :] - E[None]) ** 2).sum(-1)
        idx = d.argmin(1)
        h = ref_linear(E[idx].T, T)
        i = q.phi_index[k]
        if i is not None:
            conv = q.phis[i]
            h = ref_phi(h, conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy(), conv.ratio)
        r = r - h
        f_hat = f_hat + h
        codes.append(idx)
        if k + 1 < len(q.scales):
            inputs.append(ref_area(f_hat, q.scales[k + 1]).T)
    return codes, f_hat, np.concatenate(inputs, 0)


def test_encode_matches_float64_reference_and_ar_inputs_match():
    q = _ready(MSRQ(dimension=6, latent_dim=4, scales=[1, 2, 3, 5, 7], codebook_size=8, phi="partial",
                    phi_count=2, phi_kernel=3))
    z = torch.randn(2, 6, 7, generator=torch.Generator().manual_seed(1))
    codes = q.encode(z)
    assert [c.shape for c in codes] == [(2, n) for n in q.scales]
    f_hat = q.f_hat_from_codes(codes)
    inputs = q.teacher_forcing_inputs(codes)
    assert inputs.shape == (2, sum(q.scales) - q.scales[0], 4)
    for b in range(2):
        ref_codes, ref_fhat, ref_inputs = ref_encode(q, z[b].detach().double().numpy())
        for k in range(len(q.scales)):
            assert codes[k][b].tolist() == ref_codes[k].tolist()
        np.testing.assert_allclose(f_hat[b].detach().double().numpy(), ref_fhat, atol=1e-5)
        np.testing.assert_allclose(inputs[b].detach().double().numpy(), ref_inputs, atol=1e-5)


def test_teacher_forcing_equals_generation_built_step_by_step():
    q = _ready(MSRQ(dimension=8, latent_dim=4, scales=[1, 2, 4, 6, 9], codebook_size=16))
    codes = q.encode(torch.randn(3, 8, 9))
    f_hat = torch.zeros(3, 4, 9)
    steps = []
    for k in range(len(q.scales) - 1):           # what an AR sampler does, one scale at a time
        f_hat = f_hat + q.embed(k, codes[k])
        steps.append(q.next_input(f_hat, k))
    assert torch.equal(torch.cat(steps, 1), q.teacher_forcing_inputs(codes))
    assert torch.allclose(f_hat + q.embed(4, codes[4]), q.f_hat_from_codes(codes), atol=0, rtol=0)


def test_eval_forward_equals_encode_then_decode_and_previews():
    q = _ready(MSRQ(dimension=8, latent_dim=4, scales=[1, 3, 6, 10], codebook_size=16, phi="unshared"))
    z = torch.randn(2, 8, 10)
    out = q(z)
    codes = q.encode(z)
    assert all(torch.equal(a, b) for a, b in zip(out.codes, codes))
    assert torch.equal(out.quantized, q.decode(codes))
    assert out.commit_loss.item() == 0.0
    # decode of a prefix is the sum of that many scales' contributions
    partial = q.decode(codes[:2])
    expected = q.project_out(q.embed(0, codes[0]) + q.embed(1, codes[1]))
    assert torch.allclose(partial, expected, atol=1e-6)


def test_vector_equal_to_codebook_entry_is_returned():
    q = _ready(MSRQ(dimension=3, latent_dim=3, scales=[4], codebook_size=8, phi="none"))
    entries = q.codebooks[0].embed[[5, 0, 7, 5]]
    z = entries.t()[None]
    codes = q.encode(z)
    assert codes[0].tolist() == [[5, 0, 7, 5]]
    assert torch.equal(q.decode(codes), z)


def test_phi_assignment_rules():
    assert phi_assignment("partial", 16, 6)[0] == 0 and phi_assignment("partial", 16, 6)[-1] == 5
    assert sorted(set(phi_assignment("partial", 16, 6))) == list(range(6))
    assert phi_assignment("partial", 16, 6) == sorted(phi_assignment("partial", 16, 6))
    # ticks 1/12, 3/12, ..., 11/12 against k/15: hand-checked positions away from ties
    assignment = phi_assignment("partial", 16, 6)
    assert assignment[2] == 0 and assignment[3] == 1 and assignment[7] == 2 and assignment[12] == 4
    assert phi_assignment("unshared", 5, 5) == [0, 1, 2, 3, 4]
    assert phi_assignment("shared", 3, 1) == [0, 0, 0]
    assert phi_assignment("none", 3, 0) == [None] * 3
    with pytest.raises(ConfigError, match="phi"):
        MSRQ(4, 4, [1, 2], phi="half")


def test_ema_update_matches_hand_computation():
    book = EMACodebook(dim=2, size=3, decay=0.5, epsilon=1e-5, dead_threshold=0)
    E = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    book.embed.copy_(E), book.embed_avg.copy_(E), book.cluster_size.fill_(1.0), book.inited.fill_(1.0)
    x = torch.tensor([[0.1, 0.0], [0.9, 0.1], [1.1, 0.0], [0.0, 2.0]])
    idx = book.nearest(x)
    assert idx.tolist() == [0, 1, 1, 2]
    book.ema_update(x, idx)
    cs = [0.5 * 1 + 0.5 * 1, 0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 1]
    avg = [[0.5 * 0 + 0.5 * 0.1, 0.0], [0.5 * 1 + 0.5 * 2.0, 0.5 * 0 + 0.5 * 0.1], [0.0, 0.5 * 1 + 0.5 * 2.0]]
    n = sum(cs)
    smoothed = [(c + 1e-5) / (n + 3 * 1e-5) * n for c in cs]
    expected = [[a / s for a in row] for row, s in zip(avg, smoothed)]
    assert book.cluster_size.tolist() == pytest.approx(cs)
    assert book.embed_avg.flatten().tolist() == pytest.approx(sum(avg, []))
    assert book.embed.flatten().tolist() == pytest.approx(sum(expected, []), rel=1e-6)


def test_dead_codes_are_reseeded_from_the_batch_and_stay():
    book = EMACodebook(dim=2, size=3, decay=0.5, epsilon=1e-5, dead_threshold=1.2)
    E = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    book.embed.copy_(E), book.embed_avg.copy_(E), book.cluster_size.fill_(1.0), book.inited.fill_(1.0)
    x = torch.tensor([[0.9, 0.1], [1.1, 0.0], [1.0, -0.1], [1.2, 0.0]]).repeat(10, 1)  # all go to entry 1
    torch.manual_seed(0)
    book.ema_update(x, book.nearest(x))
    # counts after EMA: [0.5, 20.5, 0.5] -> entries 0 and 2 are dead (< 1.2, fair share 13.3), entry 1 is alive
    assert book.cluster_size.tolist() == pytest.approx([0.5, 20.5, 0.5])
    rows = {tuple(r) for r in x.tolist()}
    for dead in (0, 2):
        assert tuple(book.embed[dead].tolist()) in rows
    n = 21.5
    s1 = (20.5 + 1e-5) / (n + 3e-5) * n
    assert book.embed[1].tolist() == pytest.approx([(0.5 + 0.5 * 42.0) / s1, 0.0], rel=1e-6)
    reseeded = book.embed.clone()
    # an update where no vector picks the re-seeded entries keeps them (up to Laplace smoothing)
    y = torch.tensor([[1.0, 0.0]])
    book.dead_threshold = 0
    book.ema_update(y, book.nearest(y))
    assert torch.allclose(book.embed[[0, 2]], reseeded[[0, 2]], rtol=1e-3)


def test_small_batches_reseed_only_entries_far_below_their_fair_share():
    """8 vectors a step for 128 entries (a coarse scale at batch 8): the fair share is 1/16 per step, far
    below the absolute threshold of 2; only entries used under a tenth of it are replaced."""
    torch.manual_seed(0)
    book = EMACodebook(dim=4, size=128, decay=0.99, epsilon=1e-5, dead_threshold=2.0)
    E = torch.randn(128, 4)
    book.embed.copy_(E), book.embed_avg.copy_(E), book.inited.fill_(1.0)
    book.cluster_size.fill_(8 / 128)
    book.cluster_size[:10] = 1e-4                      # ten entries unused for a long time
    never_reseeds = copy.deepcopy(book)
    never_reseeds.dead_threshold = 0
    x = torch.randn(8, 4)
    idx = book.nearest(x)
    book.ema_update(x, idx)
    never_reseeds.ema_update(x, idx)
    torch.testing.assert_close(book.embed[10:], never_reseeds.embed[10:])
    assert not torch.allclose(book.embed[:10], never_reseeds.embed[:10])
    rows = {tuple(r) for r in x.tolist()}
    assert all(tuple(book.embed[i].tolist()) in rows for i in range(10) if i not in idx.tolist())


def test_kmeans_init_on_first_training_batch_and_training_losses():
    torch.manual_seed(0)
    q = MSRQ(dimension=4, latent_dim=4, scales=[2, 4, 8], codebook_size=4, phi="shared", kmeans_iters=5)
    assert q.codebooks[0].inited.item() == 0
    z = torch.randn(3, 4, 8, requires_grad=True)
    q.train()
    out = q(z)
    assert all(b.inited.item() == 1 for b in q.codebooks)
    assert all(b.embed.abs().sum() > 0 for b in q.codebooks)
    assert out.commit_loss.ndim == 0 and out.commit_loss.item() > 0
    assert out.usage.shape == (3,) and torch.all(out.usage <= 1) and torch.all(out.perplexity >= 1)
    # straight-through: with identity projections d(sum quantized)/dz is exactly one
    (grad,) = torch.autograd.grad(out.quantized.sum(), z, retain_graph=True)
    assert torch.equal(grad, torch.ones_like(z))
    out.commit_loss.backward()
    assert q.phis[0].weight.grad is not None and q.phis[0].weight.grad.abs().sum() > 0


def test_bad_codes_are_rejected_clearly():
    q = _ready(MSRQ(dimension=4, latent_dim=4, scales=[1, 2, 4], codebook_size=8))
    with pytest.raises(ConfigError, match=r"codes\[1\]: expected shape \(B, 2\)"):
        q.decode([torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)])
    with pytest.raises(ConfigError, match=r"indices must be in 0..7"):
        q.decode([torch.full((1, 1), 9)])
    with pytest.raises(ConfigError, match="T=4"):
        q.encode(torch.randn(1, 4, 5))


# ---- distributed: 2 ranks with half the batch each == 1 process with the whole batch --------
def _train_steps(q: MSRQ, z: torch.Tensor, steps: int = 2) -> None:
    q.train()
    for _ in range(steps):
        q(z)


def _ddp_worker(rank: int, port: int, path: str, z: torch.Tensor) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    q = MSRQ(dimension=4, latent_dim=3, scales=[2, 4, 8], codebook_size=6, kmeans_iters=3)
    half = z.shape[0] // 2
    _train_steps(q, z[rank * half:(rank + 1) * half])
    if rank == 0:
        torch.save({k: v for k, v in q.state_dict().items() if "codebooks" in k}, path)
    dist.destroy_process_group()


def test_two_process_ddp_matches_one_process(tmp_path):
    torch.set_num_threads(1)
    z = torch.randn(4, 4, 8, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    q = MSRQ(dimension=4, latent_dim=3, scales=[2, 4, 8], codebook_size=6, kmeans_iters=3)
    _train_steps(q, z)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = str(tmp_path / "rank0.pt")
    torch.multiprocessing.spawn(_ddp_worker, args=(port, path, z), nprocs=2, join=True)
    theirs = torch.load(path)
    for key, value in theirs.items():
        assert torch.allclose(q.state_dict()[key], value, atol=1e-5), key
