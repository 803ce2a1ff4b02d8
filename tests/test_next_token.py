"""NextTokenAR: cached generation equals the causal teacher-forced forward (both token orders)."""
from __future__ import annotations

import pytest
import torch

from ar_standin import StandInQuantizer
from nextscale.ar import AAR, ARConfig, NextTokenAR
from nextscale.ar.transformer import guidance_weight
from nextscale.errors import ConfigError

ORDERS = {"scale": [1, 2, 3, 5, 8], "rvq": [6, 6, 6]}


def tiny(order="scale", attention="cosine") -> NextTokenAR:
    cfg = ARConfig(kind="next_token", order=order, depth=2, width=32, heads=2, scales=ORDERS[order], codebook_size=16,
                   latent_dim=4, condition="class", cond_dim=8, num_classes=3, attention=attention)
    torch.manual_seed(0)
    model = NextTokenAR(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize("order", ["scale", "rvq"])
@pytest.mark.parametrize("attention", ["sdpa", "cosine"])
def test_cached_generation_equals_teacher_forced(order, attention):
    model = tiny(order, attention)
    cond = torch.tensor([0, 2])
    codes, logits = model.generate(None, cond, cfg=2.0, top_k=8, generator=torch.Generator().manual_seed(0),
                                   return_logits=True)
    assert [c.shape[1] for c in codes] == ORDERS[order]
    tokens = model.flatten(codes)
    with torch.no_grad():
        c_logits, n_logits = model(cond, tokens), model(None, tokens)
    t = torch.tensor([guidance_weight(2.0, int(k), len(ORDERS[order])) for k in model.levels])[None, :, None]
    ref = (1 + t) * c_logits - t * n_logits
    assert (logits - ref).abs().max() <= 1e-4


def test_static_step_equals_prefix_step():
    model = tiny()
    cond = torch.tensor([1])
    kw = dict(cfg=1.5, top_k=8, return_logits=True)
    a, la = model.generate(None, cond, generator=torch.Generator().manual_seed(5), **kw)
    b, lb = model.generate(None, cond, generator=torch.Generator().manual_seed(5), static=True, **kw)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert (la - lb).abs().max() <= 1e-5


def test_rvq_order_is_time_major():
    model = tiny("rvq")
    codes = [torch.tensor([[10 * lvl + t for t in range(6)]]) for lvl in range(3)]
    flat = model.flatten(codes)
    assert flat[0, :6].tolist() == [0, 10, 20, 1, 11, 21]
    assert all(torch.equal(x, y) for x, y in zip(model.unflatten(flat), codes))
    assert model.levels[:6].tolist() == [0, 1, 2, 0, 1, 2]


def test_causal_mask_and_training():
    model = tiny()
    tokens = torch.randint(0, 16, (2, 19), generator=torch.Generator().manual_seed(0))
    cond = torch.tensor([0, 1])
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 16
    with torch.no_grad():
        a, b = model(cond, tokens), model(cond, changed)
    assert torch.equal(a[:, :8], b[:, :8]) and (a[:, 8] - b[:, 8]).abs().max() > 1e-6
    model.train()
    codes = model.unflatten(tokens)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model.loss(cond, codes).loss.item()
    for _ in range(60):
        opt.zero_grad()
        model.loss(cond, codes).loss.backward()
        opt.step()
    assert model.loss(cond, codes).loss.item() < 0.3 * first


def test_same_backbone_as_aar_and_save_load(tmp_path):
    model = tiny()
    aar_cfg = ARConfig(**{**model.config.__dict__, "kind": "aar"})
    backbone = lambda m: {k: v.shape for k, v in m.state_dict().items() if k.startswith(("blocks.", "head.", "cond_embed."))}
    assert backbone(model) == backbone(AAR(aar_cfg))
    model.save_pretrained(tmp_path / "nt")
    loaded = NextTokenAR.from_pretrained(tmp_path / "nt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_errors():
    model = tiny()
    with pytest.raises(ConfigError, match="flattened codes"):
        model(torch.tensor([0]), torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ConfigError, match="scales"):
        model.generate(StandInQuantizer([1, 2, 3, 5, 9]), torch.tensor([0]))
    with pytest.raises(ConfigError, match="same length"):
        ARConfig(kind="next_token", order="rvq", scales=[1, 2])
    with pytest.raises(ConfigError, match="kind"):
        NextTokenAR(ARConfig(scales=[1, 2]))
