"""The fast generation path gives the tokens of eager `generate` for the same seed, compiled or not.

torch.compile runs with backend="aot_eager" or a graph-counting backend here: they exercise dynamo's
graph capture (what inductor and CUDA graphs build on) at a cost the 2-core CI can afford; inductor
itself, the CPU fast path, takes ~40 s for a 4-scale AAR on that machine (the slow test below).
"""
from __future__ import annotations

import pytest
import torch

from nextscale.ar.config import ARConfig
from nextscale.ar.fast import FastGenerator
from nextscale.ar.next_scale import AAR
from nextscale.ar.next_token import NextTokenAR
from nextscale.errors import ConfigError, NextscaleError
from nextscale.tokenizer.msrq import MSRQ
from graph_counter import GraphCounter

SCALES = [1, 2, 3, 5]
V, C, COND = 32, 4, 8
SAMPLING = dict(cfg=3.0, top_k=12, top_p=0.9, temperature=1.0)


def quantizer(scales=SCALES) -> MSRQ:
    torch.manual_seed(0)
    q = MSRQ(dimension=C, latent_dim=C, scales=scales, codebook_size=V).eval()
    for cb in q.codebooks:           # fresh codebooks are zeros: make the inputs depend on the tokens
        cb.embed.normal_()
    return q


def model(kind: str, order: str = "scale", scales=SCALES):
    torch.manual_seed(1)
    cfg = ARConfig(kind=kind, order=order, depth=2, width=32, heads=2, scales=list(scales), codebook_size=V,
                   latent_dim=C, condition="vector", cond_dim=COND, attention="cosine")
    return (AAR if kind == "aar" else NextTokenAR)(cfg).eval()


def eager_codes(m, q, cond, seed):
    return m.generate(q, cond, generator=torch.Generator().manual_seed(seed), **SAMPLING)


def assert_same_codes(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and torch.equal(x, y)


CASES = [("aar", "scale", SCALES), ("next_token", "scale", SCALES), ("next_token", "rvq", [5, 5, 5])]


@pytest.mark.parametrize("kind,order,scales", CASES)
def test_fast_eager_equals_generate(kind, order, scales):
    q, m = quantizer(scales), model(kind, order, scales)
    cond = torch.randn(3, COND)
    fast = FastGenerator(m, q, **SAMPLING)
    assert fast.steps == (len(scales) if kind == "aar" else sum(scales))
    assert_same_codes(fast(cond, torch.Generator().manual_seed(7)), eager_codes(m, q, cond, 7))


@pytest.mark.slow
@pytest.mark.parametrize("kind,order,scales", CASES[:2])
def test_compiled_step_equals_eager(kind, order, scales):
    q, m = quantizer(scales), model(kind, order, scales)
    cond = torch.randn(2, COND)
    fast = FastGenerator(m, q, compile=True, backend="aot_eager", **SAMPLING)
    reference = eager_codes(m, q, cond, 11)
    assert_same_codes(fast(cond, torch.Generator().manual_seed(11)), reference)
    # a second call reuses the compiled graphs and still follows the generator
    assert_same_codes(fast(cond, torch.Generator().manual_seed(11)), reference)
    other = fast(cond, torch.Generator().manual_seed(12))
    assert any(not torch.equal(a, b) for a, b in zip(other, reference))


def test_tokens_depend_on_the_seed_and_the_condition():
    q, m = quantizer(), model("aar")
    cond = torch.randn(2, COND)
    fast = FastGenerator(m, q, **SAMPLING)
    a = torch.cat(fast(cond, torch.Generator().manual_seed(0)), 1)
    b = torch.cat(fast(cond, torch.Generator().manual_seed(1)), 1)
    assert not torch.equal(a, b)


def test_cuda_graph_needs_a_cuda_device():
    q, m = quantizer(), model("aar")
    fast = FastGenerator(m, q, cuda_graph=True, **SAMPLING)
    with pytest.raises(NextscaleError, match="CUDA"):
        fast(torch.randn(1, COND))


def test_unknown_model_kind_is_refused():
    with pytest.raises(ConfigError, match="unsupported model kind"):
        FastGenerator(torch.nn.Linear(2, 2), quantizer(), cfg=3.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["aar", "next_token"])
def test_cuda_graph_replay_is_reproducible(kind):
    q, m = quantizer().cuda(), model(kind).cuda()
    cond = torch.randn(2, COND, device="cuda")
    g = torch.Generator(device="cuda")
    fast = FastGenerator(m, q, cuda_graph=True, **SAMPLING)
    g.manual_seed(5)
    first = fast(cond, g)
    g.manual_seed(5)
    assert_same_codes(fast(cond, g), first)          # replay follows the registered generator's seed
    g.manual_seed(6)
    assert any(not torch.equal(a, b) for a, b in zip(fast(cond, g), first))


LONG = [1, 2, 4, 8, 16, 40]     # 71 next-token steps: more than a plan compiled whole


@pytest.mark.parametrize("kind,order,scales,most", [("aar", "scale", SCALES, 1), ("next_token", "scale", LONG, 3)])
def test_compiled_generation_has_no_graph_breaks(kind, order, scales, most):
    """AAR compiles as one graph (setup, steps, codes); a long next-token plan compiles its step, as a couple of
    graphs (the int position becomes dynamic)."""
    import torch._dynamo

    torch._dynamo.reset()
    q, m = quantizer(scales), model(kind, order, scales)
    counter = GraphCounter()
    fast = FastGenerator(m, q, compile=True, backend=counter, **SAMPLING)
    assert fast.compile_scope == ("generation" if kind == "aar" else "step")
    cond = torch.randn(2, COND)
    assert_same_codes(fast(cond, torch.Generator().manual_seed(4)), eager_codes(m, q, cond, 4))
    assert 1 <= counter.graphs <= most


def test_compiled_generation_still_checks_class_ids():
    q = quantizer()
    torch.manual_seed(1)
    cfg = ARConfig(kind="aar", depth=1, width=16, heads=2, scales=SCALES, codebook_size=V, latent_dim=C,
                   condition="class", num_classes=3, cond_dim=COND)
    fast = FastGenerator(AAR(cfg).eval(), q, compile=True, backend=GraphCounter(), **SAMPLING)
    with pytest.raises(ConfigError, match="class ids"):
        fast(torch.tensor([0, 7]))


@pytest.mark.slow
def test_inductor_generation_on_cpu_equals_eager():
    """The CPU fast path itself (inductor, C++ wrapper, one graph per generation): eager's tokens for a seed."""
    q, m = quantizer(), model("aar")
    cond = torch.randn(2, COND)
    fast = FastGenerator(m, q, compile=True, **SAMPLING)
    for seed in (11, 12):
        assert_same_codes(fast(cond, torch.Generator().manual_seed(seed)), eager_codes(m, q, cond, seed))
