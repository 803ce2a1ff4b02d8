"""AAR: the cached-generation invariant, the block-causal mask, loss, training, save/load, errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ar_standin import StandInQuantizer
from nextscale.ar import AAR, ARConfig
from nextscale.ar.transformer import guidance_weight
from nextscale.errors import CheckpointError, ConfigError

SCALES = [1, 2, 3, 5, 8]


def tiny(attention="cosine", condition="class", **kw) -> AAR:
    cfg = ARConfig(depth=2, width=32, heads=2, scales=SCALES, codebook_size=16, latent_dim=4, condition=condition,
                   cond_dim=8, num_classes=3, attention=attention, **kw)
    torch.manual_seed(0)
    model = AAR(cfg)
    with torch.no_grad():   # move away from the near-identity init so every path matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def random_codes(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 16, (batch, n), generator=g) for n in SCALES]


@pytest.mark.parametrize("attention", ["sdpa", "cosine"])
@pytest.mark.parametrize("cfg", [0.0, 3.0])
def test_cached_generation_equals_teacher_forced_forward(attention, cfg):
    model, q = tiny(attention), StandInQuantizer(SCALES)
    cond = torch.tensor([0, 2])
    codes, logits = model.generate(q, cond, cfg=cfg, top_k=6, top_p=0.9, generator=torch.Generator().manual_seed(1),
                                   return_logits=True)
    inputs = q.teacher_forcing_inputs(codes)
    with torch.no_grad():
        cond_logits = model(cond, inputs)
        null_logits = model(None, inputs)
    for k, (s, e) in enumerate(model.bounds):
        t = guidance_weight(cfg, k, len(SCALES))
        ref = (1 + t) * cond_logits[:, s:e] - t * null_logits[:, s:e]
        assert (logits[k] - ref).abs().max() <= 1e-4, f"scale {k}"
        assert codes[k].shape == (2, SCALES[k])


def test_block_causal_mask():
    model, q = tiny(), StandInQuantizer(SCALES)
    cond = torch.tensor([1, 1])
    codes = random_codes()
    for k in range(len(SCALES) - 1):
        changed = [c.clone() for c in codes]
        changed[k][:, -1] = (changed[k][:, -1] + 1) % 16
        with torch.no_grad():
            a = model(cond, q.teacher_forcing_inputs(codes))
            b = model(cond, q.teacher_forcing_inputs(changed))
        _, end_k = model.bounds[k]
        _, end_next = model.bounds[k + 1]
        assert torch.equal(a[:, :end_k], b[:, :end_k]), f"scale {k} changed logits of scales <= {k}"
        assert (a[:, end_k:end_next] - b[:, end_k:end_next]).abs().max() > 1e-6


def test_cfg_ramp_is_linear_from_zero():
    assert guidance_weight(4.0, 0, 16) == 0.0
    assert guidance_weight(4.0, 15, 16) == 4.0
    assert guidance_weight(4.0, 5, 16) == pytest.approx(4.0 / 3)


def test_top_k_1_is_greedy_and_seeds_reproduce():
    model, q = tiny(), StandInQuantizer(SCALES)
    cond = torch.tensor([0, 1])
    codes, logits = model.generate(q, cond, cfg=2.0, top_k=1, return_logits=True)
    for c, lg in zip(codes, logits):
        assert torch.equal(c, lg.argmax(-1))
    run = lambda seed: model.generate(q, cond, cfg=2.0, top_k=8, generator=torch.Generator().manual_seed(seed))
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert any(not torch.equal(x, y) for x, y in zip(a, c))


def test_cfg_zero_equals_plain_conditional_sampling():
    """cfg=0 must sample from the conditional model alone: replay it with full forwards."""
    model, q = tiny(), StandInQuantizer(SCALES)
    cond = torch.tensor([2, 0])
    from nextscale.ar.sampling import sample_logits

    codes = model.generate(q, cond, cfg=0.0, top_k=10, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    ref = []
    for k, (s, e) in enumerate(model.bounds):
        padded = ref + [torch.zeros(2, n, dtype=torch.long) for n in SCALES[k:]]
        with torch.no_grad():
            logits = model(cond, q.teacher_forcing_inputs(padded))[:, s:e]
        ref.append(sample_logits(logits, 10, 0.0, 1.0, g))
    assert all(torch.equal(x, y) for x, y in zip(codes, ref))


def test_loss_matches_cross_entropy_per_scale():
    model, q = tiny(), StandInQuantizer(SCALES)
    cond, codes = torch.tensor([0, 1]), random_codes()
    out = model.loss(cond, codes, q)
    with torch.no_grad():
        logits = model(cond, q.teacher_forcing_inputs(codes))
    target = torch.cat(codes, 1)
    assert out.loss.item() == pytest.approx(F.cross_entropy(logits.reshape(-1, 16), target.reshape(-1)).item(), rel=1e-5)
    for k, (s, e) in enumerate(model.bounds):
        ce = F.cross_entropy(logits[:, s:e].reshape(-1, 16), target[:, s:e].reshape(-1))
        acc = (logits[:, s:e].argmax(-1) == target[:, s:e]).float().mean()
        assert out.scale_loss[k].item() == pytest.approx(ce.item(), rel=1e-5)
        assert out.scale_acc[k].item() == pytest.approx(acc.item())


def test_scale_loss_weighting_is_the_mean_of_the_per_scale_losses():
    """model.loss_weighting "scale": each scale's mean cross-entropy counts 1/K (float64 reference from the
    logits); the weights change the loss only, not the logits; the next-token baseline weighs alike."""
    plain, weighted = tiny(), tiny(loss_weighting="scale")
    q = StandInQuantizer(SCALES)
    cond, codes = torch.tensor([0, 2]), random_codes()
    out = weighted.loss(cond, codes, q)
    with torch.no_grad():
        logits = weighted(cond, q.teacher_forcing_inputs(codes)).double()
        assert torch.equal(logits.float(), plain(cond, q.teacher_forcing_inputs(codes)))
    target = torch.cat(codes, 1)
    per_scale = [F.cross_entropy(logits[:, s:e].reshape(-1, 16), target[:, s:e].reshape(-1)) for s, e in weighted.bounds]
    assert out.loss.item() == pytest.approx(torch.stack(per_scale).mean().item(), rel=1e-5)
    assert out.loss.item() != pytest.approx(plain.loss(cond, codes, q).loss.item(), rel=1e-3)   # 1/K is not n_k/L

    from nextscale.ar.next_token import NextTokenAR
    cfg = dict(kind="next_token", depth=1, width=32, heads=2, scales=SCALES, codebook_size=16, latent_dim=4,
               condition="class", cond_dim=8, num_classes=3)
    torch.manual_seed(0)
    baseline = NextTokenAR(ARConfig(**cfg, loss_weighting="scale")).eval()
    target, _ = baseline.prepare_batch(cond, codes, None)
    with torch.no_grad():
        ce = F.cross_entropy(baseline(cond, target).double().transpose(1, 2), target, reduction="none")
    expect = torch.stack([ce[:, baseline.levels == k].mean() for k in range(len(SCALES))]).mean()
    assert baseline.loss(cond, codes, None).loss.item() == pytest.approx(expect.item(), rel=1e-5)


def test_scale_loss_shares_weigh_each_scales_mean_cross_entropy():
    """model.scale_loss_shares: scale k's mean cross-entropy counts share_k / sum(shares) (float64 reference);
    equal shares are the plain "scale" weighting."""
    shares = [8.0, 1.0, 2.0, 1.0, 0.5]
    shared, equal = tiny(loss_weighting="scale", scale_loss_shares=shares), tiny(loss_weighting="scale")
    q = StandInQuantizer(SCALES)
    cond, codes = torch.tensor([0, 2]), random_codes()
    with torch.no_grad():
        logits = shared(cond, q.teacher_forcing_inputs(codes)).double()
    target = torch.cat(codes, 1)
    per_scale = torch.stack([F.cross_entropy(logits[:, s:e].reshape(-1, 16), target[:, s:e].reshape(-1))
                             for s, e in shared.bounds])
    weights = torch.tensor(shares, dtype=torch.float64)
    assert shared.loss(cond, codes, q).loss.item() == pytest.approx((per_scale * weights).sum().item() / sum(shares),
                                                                    rel=1e-5)
    flat = tiny(loss_weighting="scale", scale_loss_shares=[3.0] * len(SCALES))
    assert flat.loss(cond, codes, q).loss.item() == pytest.approx(equal.loss(cond, codes, q).loss.item(), rel=1e-6)


@pytest.mark.parametrize("fields, reason", [
    (dict(scale_loss_shares=[1.0, 1.0]), "needs loss_weighting 'scale'"),
    (dict(loss_weighting="scale", scale_loss_shares=[1.0, 1.0]), "positive numbers \\(one per scale\\)"),
    (dict(loss_weighting="scale", scale_loss_shares=[1.0, 0.0, 1.0, 1.0, 1.0]), "positive numbers"),
])
def test_bad_scale_loss_shares_name_the_field_and_reason(fields, reason):
    with pytest.raises(ConfigError, match=r"model\.scale_loss_shares: .*" + reason):
        tiny(**fields)


def test_training_lowers_loss_and_conditioning_matters():
    """Two classes with different fixed code maps: the model must learn to tell them apart."""
    torch.manual_seed(0)
    cfg = ARConfig(depth=2, width=32, heads=2, scales=SCALES, codebook_size=16, latent_dim=4, condition="class",
                   cond_dim=8, num_classes=2, cond_dropout=0.1)
    model, q = AAR(cfg), StandInQuantizer(SCALES)
    per_class = [random_codes(1, seed=10), random_codes(1, seed=11)]
    cond = torch.tensor([0, 1] * 4)
    codes = [torch.cat([per_class[c][k] for c in cond.tolist()]) for k in range(len(SCALES))]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    first = model.loss(cond, codes, q).loss.item()
    for _ in range(150):
        opt.zero_grad()
        model.loss(cond, codes, q).loss.backward()
        opt.step()
    model.eval()
    last = model.loss(cond, codes, q).loss.item()
    assert last < 0.3 * first, (first, last)
    sampled = model.generate(q, torch.tensor([0, 1]), cfg=1.0, top_k=1)
    for c in range(2):
        match = torch.cat([s[c] == per_class[c][k][0] for k, s in enumerate(sampled)]).float().mean()
        assert match > 0.8


def test_save_load_bitwise(tmp_path):
    model, q = tiny(condition="vector"), StandInQuantizer(SCALES)
    model.save_pretrained(tmp_path / "aar")
    loaded = AAR.from_pretrained(tmp_path / "aar")
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    cond = torch.randn(2, 8)
    inputs = q.teacher_forcing_inputs(random_codes())
    with torch.no_grad():
        assert torch.equal(model(cond, inputs), loaded(cond, inputs))
    with pytest.raises(CheckpointError, match="next_token"):
        from nextscale.ar import NextTokenAR
        NextTokenAR.from_pretrained(tmp_path / "aar")


def test_clear_errors():
    model, q = tiny(), StandInQuantizer(SCALES)
    inputs = q.teacher_forcing_inputs(random_codes())
    with pytest.raises(ConfigError, match=r"class ids must be in \[0, 3\)"):
        model(torch.tensor([0, 3]), inputs)
    with pytest.raises(ConfigError, match="LongTensor of class ids"):
        model(torch.randn(2, 8), inputs)
    with pytest.raises(ConfigError, match="teacher-forcing inputs"):
        model(torch.tensor([0, 1]), inputs[:, :-1])
    with pytest.raises(ConfigError, match="scales"):
        model.generate(StandInQuantizer([1, 2, 4, 5, 8]), torch.tensor([0]))
    with pytest.raises(ConfigError, match="codebook_size"):
        model.generate(StandInQuantizer(SCALES, codebook_size=32), torch.tensor([0]))
    vec = tiny(condition="vector")
    with pytest.raises(ConfigError, match=r"\(B, 8\)"):
        vec(torch.randn(2, 7), inputs)
    with pytest.raises(ConfigError, match="codes"):
        model.loss(torch.tensor([0, 1]), random_codes()[:-1], q)
    with pytest.raises(ConfigError, match="strictly increasing"):
        ARConfig(scales=[1, 3, 3])


def test_configs_build(tmp_path):
    from nextscale.config import CONFIG_DIR as root

    tiny_model = AAR.from_config("aar-tiny")
    assert tiny_model.config.num_tokens == 234
    d16 = ARConfig(**{k: v for k, v in __import__("yaml").safe_load((root / "aar-d16.yaml").read_text())["model"].items()})
    assert (d16.width, d16.heads, d16.attention, d16.cond_dim) == (1024, 16, "cosine", 512)


def test_invariant_with_the_real_msrq():
    msrq_module = pytest.importorskip("nextscale.tokenizer.msrq")
    torch.manual_seed(0)
    q = msrq_module.MSRQ(dimension=4, latent_dim=4, scales=SCALES, codebook_size=16).eval()
    with torch.no_grad():
        for cb in q.codebooks:
            for name, buf in cb.named_buffers():
                if buf.shape == (16, 4):
                    buf.copy_(torch.randn(16, 4))
    model = tiny()
    cond = torch.tensor([0, 1])
    codes, logits = model.generate(q, cond, cfg=0.0, top_k=4, generator=torch.Generator().manual_seed(0),
                                   return_logits=True)
    with torch.no_grad():
        ref = model(cond, q.teacher_forcing_inputs(codes))
    assert (torch.cat(logits, 1) - ref).abs().max() <= 1e-4


def test_unknown_loss_weighting_is_a_config_error_naming_the_field():
    """The config loader rejects a misspelt weighting with the field's path, before any model is built."""
    from nextscale.train.ar import load_ar_train_config

    with pytest.raises(ConfigError, match=r"model\.loss_weighting: expected one of 'token', 'scale', got 'tokens'"):
        load_ar_train_config("aar-synth", ["model.loss_weighting=tokens", "data.tokens=unused"])



def test_guided_head_equals_guiding_its_logits_in_float64():
    """CFG applied before the vocabulary projection (half its cost) is the same affine map as after it."""
    model = tiny().double()
    x = torch.randn(4, 5, 32, dtype=torch.float64)          # rows [cond; null] of a batch of 2
    mod = model.head.modulation(torch.randn(4, 32, dtype=torch.float64))
    t = 2.5
    logits = model.head(x, mod)
    reference = (1 + t) * logits[:2] - t * logits[2:]
    assert torch.allclose(model.head(x, mod, guidance=(2, t)), reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["aar", "next_token"])
def test_growing_caches_generate_what_preallocated_caches_do(kind):
    """KV caches that append (a whole generation traced as one graph) give the same tokens and logits."""
    from nextscale.ar import NextTokenAR

    if kind == "aar":
        model = tiny()
    else:
        torch.manual_seed(0)
        model = NextTokenAR(ARConfig(kind="next_token", depth=2, width=32, heads=2, scales=SCALES, codebook_size=16,
                                     latent_dim=4, condition="class", cond_dim=8, num_classes=3)).eval()
    q, cond = StandInQuantizer(SCALES), torch.tensor([0, 2])

    def run(growing):
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            state = model.setup(q, cond, guided=True, growing=growing)
            steps = [model.step(state, q, i, t, 6, 0.9, 1.0, g) for i, t in model.generation_plan(3.0)]
        return state, steps

    state, grown = run(True)
    assert all(c.growing and c.k.shape[2] == model.config.sequence_length for c in state.caches)
    for (tokens, logits), (ref_tokens, ref_logits) in zip(grown, run(False)[1]):
        assert torch.equal(tokens, ref_tokens)
        assert torch.allclose(logits, ref_logits, rtol=0, atol=1e-5)


def test_growing_cache_refuses_out_of_order_writes_and_reads():
    from nextscale.ar.transformer import KVCache
    from nextscale.errors import NextscaleError

    cache = KVCache(1, 2, 8, 4, "cpu", torch.float32, growing=True)
    k = torch.randn(1, 2, 3, 4)
    cache.write(0, k, k)
    assert torch.equal(cache.visible(3)[0], k)
    with pytest.raises(NextscaleError, match="write at 5, but 3 positions are filled"):
        cache.write(5, k, k)
    with pytest.raises(NextscaleError, match="6 positions asked for, 3 filled"):
        cache.visible(6)
