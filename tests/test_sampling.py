"""sample_logits: greedy, top-k, top-p nucleus, temperature, seeds — against closed forms."""
from __future__ import annotations

import math

import pytest
import torch

from nextscale.ar.sampling import largest_values, nucleus_size, sample_logits
from nextscale.errors import ConfigError

PROBS = torch.tensor([0.05, 0.5, 0.15, 0.3])   # sorted: 1 (0.5), 3 (0.3), 2 (0.15), 0 (0.05)
LOGITS = PROBS.log()


def frequencies(logits, n=20000, **kw):
    rows = logits.expand(n, -1)
    draws = sample_logits(rows, generator=torch.Generator().manual_seed(0), **kw)
    return torch.bincount(draws, minlength=logits.shape[-1]).float() / n


def test_top_k_1_and_temperature_0_are_argmax():
    logits = torch.randn(7, 3, 50)
    assert torch.equal(sample_logits(logits, top_k=1), logits.argmax(-1))
    assert torch.equal(sample_logits(logits, temperature=0.0, top_k=20), logits.argmax(-1))


@pytest.mark.parametrize("p, kept", [(0.4, {1}), (0.75, {1, 3}), (0.9, {1, 2, 3})])
def test_top_p_keeps_smallest_set_with_mass_at_least_p(p, kept):
    order = LOGITS.argsort(descending=True)
    probs = LOGITS[order].softmax(dim=-1)
    size = int(nucleus_size(probs, probs.cumsum(dim=-1), p))
    assert {int(i) for i in order[:size]} == kept
    freq = frequencies(LOGITS, top_p=p)
    assert {i for i in range(4) if freq[i] > 0} == kept
    mass = sum(PROBS[i].item() for i in kept)
    for i in kept:   # renormalised inside the nucleus
        assert freq[i].item() == pytest.approx(PROBS[i].item() / mass, abs=0.015)


def test_top_k_then_top_p():
    freq = frequencies(LOGITS, top_k=3, top_p=0.6)
    # top-3 renormalised: 0.5/.95, 0.3/.95, 0.15/.95 -> nucleus 0.6 keeps the first two
    assert freq[0] == 0 and freq[2] == 0
    assert freq[1].item() == pytest.approx(0.5 / 0.8, abs=0.015)


def test_temperature_matches_closed_form():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    for temp in (0.5, 2.0):
        want = (logits / temp).softmax(-1)
        assert torch.allclose(frequencies(logits, temperature=temp), want, atol=0.015)


@pytest.mark.parametrize("shape, k", [((5, 1000), 20), ((3, 4, 64), 64), ((1, 7), 1), ((40, 1024), 200),
                                     ((2, 20, 50), 1), ((1, 20, 1024), 200), ((24, 4096), 200)])
def test_largest_values_equal_topk_values(shape, k):
    x = torch.randn(shape)
    assert torch.equal(largest_values(x, k), x.topk(k, dim=-1).values)
    columns = torch.randn(shape[-1], *shape[:-1]).movedim(0, -1)        # non-contiguous rows
    assert torch.equal(largest_values(columns, k), columns.topk(k, dim=-1).values)


@pytest.mark.parametrize("rows", [6, 40])     # through `topk` and through numpy's sort
def test_largest_values_compiles_without_graph_break(rows):
    x = torch.randn(rows, 300)
    f = torch.compile(lambda t: largest_values(t * 2, 30), backend="aot_eager", fullgraph=True)
    assert torch.equal(f(x), (x * 2).topk(30, dim=-1).values)


def reference_draw(logits, top_k, top_p, u):
    """Float64 inverse CDF, independent of the sampler: over the tokens ranked by (logit desc, id asc)
    when top-k or top-p needs a ranking, else in token order."""
    out = []
    for row, r in zip(logits.double(), u.double().flatten()):
        order = sorted(range(len(row)), key=lambda i: (-row[i].item(), i)) if top_k or top_p else range(len(row))
        kept = order[:top_k] if top_k else order
        p = torch.softmax(row[kept], dim=0)
        if top_p:
            mass_before = p.cumsum(0) - p
            kept, p = [i for i, m in zip(kept, mass_before) if m < top_p], p[mass_before < top_p]
        cdf = (p / p.sum()).cumsum(0)
        out.append(kept[min(int((cdf <= r).sum()), len(kept) - 1)])
    return torch.tensor(out)


@pytest.mark.parametrize("top_k, top_p", [(0, 0.0), (50, 0.0), (0, 0.9), (50, 0.8)])
def test_draw_equals_a_float64_inverse_cdf_reference(top_k, top_p):
    logits = torch.randn(200, 128) * 2
    u = torch.rand(200, 1, generator=torch.Generator().manual_seed(3))
    got = sample_logits(logits, top_k=top_k, top_p=top_p, noise=u)
    want = reference_draw(logits, top_k, top_p, u)
    assert (got == want).float().mean() > 0.99          # float32 vs float64 cdf may part at a boundary
    assert len(set(got.tolist())) > 20                      # a real spread of tokens, not one


def test_equal_logits_keep_their_own_probability():
    """bf16 logits tie often: each tied token must keep its share, not hand it to the lower id."""
    logits = torch.tensor([[0.0, 2.0, 1.0, 2.0, 2.0]]).expand(30000, -1)
    freq = torch.bincount(sample_logits(logits, top_k=4, generator=torch.Generator().manual_seed(0)),
                          minlength=5).float() / 30000
    p = torch.tensor([2.0, 1.0, 2.0, 2.0]).softmax(0)              # the top-4: ids 1, 2, 3, 4
    assert freq[0] == 0
    assert torch.allclose(freq[1:], p, atol=0.015)


def test_noise_shape_is_checked():
    with pytest.raises(ConfigError, match="noise must have shape"):
        sample_logits(torch.randn(3, 10), top_k=5, noise=torch.rand(3, 5))


def test_seeds():
    logits = torch.randn(64, 100)
    draw = lambda s: sample_logits(logits, top_k=50, top_p=0.95, generator=torch.Generator().manual_seed(s))
    assert torch.equal(draw(0), draw(0))
    assert not torch.equal(draw(0), draw(1))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="temperature"):
        sample_logits(torch.randn(2, 5), temperature=-1.0)
    with pytest.raises(ConfigError, match="top_k"):
        sample_logits(torch.randn(2, 5), top_k=-3)
    assert not math.isnan(float(sample_logits(torch.randn(2, 5), top_k=100)[0]))
