"""Training fast paths give the plain step's loss and gradients: a compiled forward + loss, FlexAttention.

Tolerances: the aot_eager backend runs the very same ATen ops, so loss and gradients agree to 1e-6
(relative); inductor fuses and reorders float32 reductions, so there they agree to 1e-4 relative
(plus 1e-6 absolute for gradients near zero). FlexAttention in this torch has no backward pass on
CPU: its forward is checked against SDPA here, and training falls back to SDPA with a warning.
Condition dropout is off, so both paths see the same batch (compiled graphs draw other random numbers).
"""
from __future__ import annotations

import sys

import pytest
import torch

from nextscale.ar import kernels
from nextscale.ar.next_scale import AAR
from nextscale.ar.next_token import NextTokenAR
from nextscale.errors import ConfigError
from nextscale.train.ar import LossForward, load_ar_train_config
from graph_counter import GraphCounter
from tiny_models import CODEBOOK, LATENT, SCALES, tiny_sat


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sat():
    return tiny_sat()


def model(kind: str = "aar", attention: str = "cosine"):
    torch.manual_seed(1)
    cls = AAR if kind == "aar" else NextTokenAR
    return cls.from_config({"kind": kind, "depth": 2, "width": 32, "heads": 2, "scales": SCALES,
                            "codebook_size": CODEBOOK, "latent_dim": LATENT, "condition": "class",
                            "num_classes": 4, "cond_dim": 16, "cond_dropout": 0.0, "attention": attention}).train()


def batch(b: int = 3):
    g = torch.Generator().manual_seed(0)
    return torch.tensor([0, 3, 1][:b]), [torch.randint(CODEBOOK, (b, n), generator=g) for n in SCALES]


def loss_and_grads(net, model, sat):
    model.zero_grad(set_to_none=True)
    cond, codes = batch()
    out = net(cond, codes, sat.quantizer)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_step(a, b, rtol, atol):
    (out_a, grads_a), (out_b, grads_b) = a, b
    torch.testing.assert_close(out_a.loss, out_b.loss, rtol=rtol, atol=0.0)
    torch.testing.assert_close(out_a.scale_loss, out_b.scale_loss, rtol=rtol, atol=0.0)
    assert torch.equal(out_a.scale_acc, out_b.scale_acc)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("kind", ["aar", "next_token"])
def test_compiled_loss_is_one_graph_with_the_plain_loss_and_gradients(kind, sat):
    import torch._dynamo

    torch._dynamo.reset()
    m = model(kind)
    plain = loss_and_grads(LossForward(m), m, sat)
    counter = GraphCounter()
    assert_same_step(loss_and_grads(LossForward(m, counter), m, sat), plain, rtol=1e-6, atol=1e-7)
    assert counter.graphs == 1        # forward, teacher-forcing inputs and loss: no graph break
    assert_same_step(loss_and_grads(LossForward(m, "aot_eager"), m, sat), plain, rtol=1e-6, atol=1e-7)


def test_compiled_loss_still_checks_the_batch(sat):
    m = model()
    net = LossForward(m, GraphCounter())
    cond, codes = batch()
    with pytest.raises(ConfigError, match="class ids"):
        net(torch.tensor([0, 9, 1]), codes, sat.quantizer)
    codes[2][0, 0] = CODEBOOK
    with pytest.raises(ConfigError, match="token ids"):
        net(cond, codes, sat.quantizer)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["aar", "next_token"])
def test_inductor_loss_and_gradients_match_the_plain_step(kind, sat):
    import torch._dynamo

    torch._dynamo.reset()
    m = model(kind)
    plain = loss_and_grads(LossForward(m), m, sat)
    assert_same_step(loss_and_grads(LossForward(m, "inductor"), m, sat), plain, rtol=1e-4, atol=1e-6)


def block_causal_mask():
    levels = torch.cat([torch.full((n,), k) for k, n in enumerate(SCALES)])
    return levels[:, None] >= levels[None, :]


def random_qkv(n: int):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, 2, sum(SCALES), 16, generator=g) for _ in range(n)]


needs_flex = pytest.mark.skipif(kernels.flex_problem(torch.device("cpu"), backward=False) is not None,
                                reason="FlexAttention cannot run on CPU in this torch")


@needs_flex
@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_attention_equals_sdpa_under_the_block_causal_mask():
    mask, (q, k, v) = block_causal_mask(), random_qkv(3)
    block = kernels.block_mask(mask)
    assert kernels.is_block_mask(block) and not kernels.is_block_mask(mask)
    for scale in (None, 1.0):
        torch.testing.assert_close(kernels.attend(q, k, v, block, scale), kernels.attend(q, k, v, mask, scale),
                                   rtol=1e-5, atol=1e-5)


@needs_flex
@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_attention_takes_the_dtype_autocast_gives_sdpa():
    """Under bf16 autocast cosine attention hands float32 q, k and a bf16 v: both kernels attend in bf16."""
    mask, (q, k, v) = block_causal_mask(), random_qkv(3)
    v = v.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        flex = kernels.attend(q, k, v, kernels.block_mask(mask), 1.0)
        sdpa = kernels.attend(q, k, v, mask, 1.0)
    assert flex.dtype == sdpa.dtype == torch.bfloat16
    torch.testing.assert_close(flex.float(), sdpa.float(), rtol=2e-2, atol=2e-2)


@needs_flex
@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("kind,attention", [("aar", "cosine"), ("aar", "sdpa"), ("next_token", "cosine")])
def test_model_forward_with_flex_equals_sdpa(kind, attention, sat):
    m = model(kind, attention).eval()
    cond, codes = batch()
    with torch.no_grad():
        reference = m.loss(cond, codes, sat.quantizer).loss
        assert m.use_attention_kernel("flex", backward=False) == "flex" and m.block_mask is not None
        flex = m.loss(cond, codes, sat.quantizer).loss
    torch.testing.assert_close(flex, reference, rtol=1e-5, atol=0.0)
    assert m.use_attention_kernel("sdpa") == "sdpa" and m.block_mask is None


def test_flex_falls_back_to_sdpa_where_it_cannot_train(sat, monkeypatch):
    m = model()
    plain = loss_and_grads(LossForward(m), m, sat)
    problem = kernels.flex_problem(torch.device("cpu"))
    if problem is None:   # a torch that trains FlexAttention on CPU: take it away
        monkeypatch.setitem(sys.modules, "torch.nn.attention.flex_attention", None)
        problem = kernels.flex_problem(torch.device("cpu"))
        assert "has no torch.nn.attention.flex_attention" in problem
    with pytest.warns(UserWarning, match="using 'sdpa'"):
        assert m.use_attention_kernel("flex") == "sdpa"
    assert m.block_mask is None
    assert_same_step(loss_and_grads(LossForward(m), m, sat), plain, rtol=0.0, atol=0.0)


def test_flex_is_refused_cleanly_when_torch_lacks_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.nn.attention.flex_attention", None)
    assert "has no" in kernels.flex_problem(torch.device("cpu"), backward=False)
    m = model()
    with pytest.warns(UserWarning, match="has no torch.nn.attention.flex_attention"):
        assert m.use_attention_kernel("flex", backward=False) == "sdpa"


def test_unknown_kernel_is_refused():
    with pytest.raises(ConfigError, match="attention kernel"):
        model().use_attention_kernel("xformers")


def test_train_config_takes_the_fast_path_switches():
    from train_data import tiny_ar_config

    cfg = load_ar_train_config(tiny_ar_config(compile=True, attention_kernel="flex"))
    assert cfg.train.compile is True and cfg.train.attention_kernel == "flex"
    with pytest.raises(ConfigError, match="attention_kernel"):
        load_ar_train_config(tiny_ar_config(attention_kernel="xformers"))
