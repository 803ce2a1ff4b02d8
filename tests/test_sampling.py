"""sample_logits: greedy, top-k, top-p nucleus, temperature, seeds — against closed forms."""
from __future__ import annotations

import math

import pytest
import torch

from nextscale.ar.sampling import sample_logits, top_p_mask
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
    mask = top_p_mask(LOGITS[order], p)
    assert {int(i) for i in order[~mask]} == kept
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


def test_top_k_does_not_sort_the_vocabulary(monkeypatch):
    def no_sort(*a, **k):
        raise AssertionError("full sort used although top_k is set")
    monkeypatch.setattr(torch.Tensor, "sort", no_sort)
    monkeypatch.setattr(torch, "sort", no_sort)
    out = sample_logits(torch.randn(4, 1000), top_k=20, top_p=0.9, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4,)


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
