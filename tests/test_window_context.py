"""Window-by-window generation: context tokens (the previous window's latent) in both AR models, the
cached == teacher-forced invariant with a context, the windows' code layout, caches of consecutive
windows, training on them, long clips through the pipeline, and multi-second synthetic sequences."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ar_standin import StandInQuantizer
from nextscale.ar import AAR, ARConfig
from nextscale.ar.next_token import NextTokenAR
from nextscale.ar.transformer import context_frames, guidance_weight
from nextscale.ar.windows import context_before, generate_windows, join_windows, split_windows, window_latent
from nextscale.errors import ConfigError, DataError, NextscaleError
from nextscale.train.token_cache import TokenCacheDataset, build_token_cache
from train_data import ToneData, collate, tiny_ar_config

SCALES = [1, 2, 3, 5, 8]


def tiny(kind: str = "aar", context_tokens: int = 4, **kw):
    cls = AAR if kind == "aar" else NextTokenAR
    cfg = ARConfig(kind=kind, depth=2, width=32, heads=2, scales=SCALES, codebook_size=16, latent_dim=4,
                   condition="class", cond_dim=8, num_classes=3, attention="cosine", context_tokens=context_tokens, **kw)
    torch.manual_seed(0)
    model = cls(cfg)
    with torch.no_grad():   # away from the near-identity init so every path, the context's included, matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def latent(batch: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randn(batch, 4, SCALES[-1], generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["aar", "next_token"])
@pytest.mark.parametrize("cfg", [0.0, 3.0])
@pytest.mark.parametrize("with_context", [True, False])
def test_cached_generation_with_context_equals_teacher_forced_forward(kind, cfg, with_context):
    model, q = tiny(kind), StandInQuantizer(SCALES)
    cond, context = torch.tensor([0, 2]), (latent() if with_context else None)
    codes, logits = model.generate(q, cond, cfg=cfg, top_k=6, top_p=0.9, generator=torch.Generator().manual_seed(1),
                                   return_logits=True, context=context)
    with torch.no_grad():
        inputs = q.teacher_forcing_inputs(codes) if kind == "aar" else model.flatten(codes)
        cond_logits, null_logits = model(cond, inputs, context), model(None, inputs, context)
    if kind == "aar":        # one scale a step: logits[k] is (B, n_k, V)
        spans = [(k, s, e, logits[k]) for k, (s, e) in enumerate(model.bounds)]
    else:                    # one token a step, gathered (B, L, V); the guidance weight follows the token's scale
        spans = [(int(model.levels[i]), i, i + 1, logits[:, i:i + 1]) for i in range(model.config.num_tokens)]
    for k, s, e, got in spans:
        t = guidance_weight(cfg, k, len(SCALES))
        ref = (1 + t) * cond_logits[:, s:e] - t * null_logits[:, s:e]
        assert (got - ref).abs().max() <= 1e-4, f"{kind} tokens {s}:{e}"


def test_context_moves_the_logits_and_an_absent_row_gets_the_null_context():
    model, q = tiny(), StandInQuantizer(SCALES)
    cond = torch.tensor([0, 1])
    inputs = q.teacher_forcing_inputs([torch.randint(0, 16, (2, n)) for n in SCALES])
    with torch.no_grad():
        none, seen = model(cond, inputs), model(cond, inputs, latent())
        absent = model(cond, inputs, latent(), context_present=torch.tensor([False, True]))
    assert (none - seen).abs().max() > 1e-3
    assert torch.allclose(absent[0], none[0], atol=1e-6) and torch.allclose(absent[1], seen[1], atol=1e-6)


def test_context_frames_keep_the_join_in_detail_and_pool_the_rest():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8)
    out = context_frames(x, 4)                                   # 2 pooled + the last 2 frames as they are
    assert out.shape == (2, 4, 3)
    assert torch.equal(out[:, 2:], x[..., 6:].transpose(1, 2))
    assert torch.allclose(out[:, :2], x[..., :6].reshape(2, 3, 2, 3).mean(-1).transpose(1, 2))


def test_models_refuse_contexts_they_were_not_trained_for():
    model, q = tiny(context_tokens=0), StandInQuantizer(SCALES)
    with pytest.raises(ConfigError, match="trained without window context"):
        model.generate(q, torch.tensor([0]), cfg=0.0, context=latent(1))
    with pytest.raises(ConfigError, match=r"context: expected the previous window's latent with shape \(1, 4, 8\)"):
        tiny().generate(q, torch.tensor([0]), cfg=0.0, context=torch.zeros(1, 4, 7))
    with pytest.raises(ConfigError, match=r"model\.context_tokens: must be in \[0, 8\]"):
        tiny(context_tokens=9)


def test_windows_join_window_after_window_and_split_back():
    g = torch.Generator().manual_seed(0)
    windows = [[torch.randint(0, 16, (2, n), generator=g) for n in SCALES] for _ in range(3)]
    joined = join_windows(windows)
    assert [c.shape for c in joined] == [(2, 3 * n) for n in SCALES]
    assert torch.equal(joined[4][:, 8:16], windows[1][4])
    back = split_windows(joined, SCALES)
    assert all(torch.equal(a, b) for w, v in zip(back, windows) for a, b in zip(w, v))
    with pytest.raises(ConfigError, match=r"codes\[1\]: expected \(B, 3 \* 2\) for 3 windows"):
        split_windows([joined[0], joined[1][:, :5], *joined[2:]], SCALES)


def recording_step(model, q):
    """A window step that records the context each window got and the codes it made (seeded per window)."""
    seen, made = [], []

    def step(cond, context):
        seen.append(context)
        made.append(model.generate(q, cond, cfg=0.0, generator=torch.Generator().manual_seed(len(made)),
                                   context=context))
        return made[-1]

    return step, seen, made


def test_each_window_continues_the_latent_of_the_one_before():
    model, q = tiny(), StandInQuantizer(SCALES)
    step, seen, made = recording_step(model, q)
    codes = generate_windows(model, q, torch.tensor([0, 1]), 3, step=step)
    assert seen[0] is None and len(seen) == 3
    for w in (1, 2):
        assert torch.equal(seen[w], window_latent(q, made[w - 1]))
    assert all(torch.equal(a, b) for a, b in zip(codes, join_windows(made)))
    seen.clear()
    generate_windows(model, q, torch.tensor([0, 1]), 2, step=step, independent=True)
    assert seen == [None, None]
    with pytest.raises(ConfigError, match="trained without window context"):
        generate_windows(tiny(context_tokens=0), q, torch.tensor([0]), 2)


def test_overlapping_windows_continue_the_joined_latent_up_to_their_start():
    """T = 8, overlap 2: windows start at frames 0, 6, 12. Window 1's context is window 0's first 6 frames
    after 2 copies of its first frame; window 2's is frames 4..11: window 0's 4, 5, the crossfade at 6, 7,
    and window 1's frames 2..5."""
    model, q = tiny(), StandInQuantizer(SCALES)
    step, seen, made = recording_step(model, q)
    codes = generate_windows(model, q, torch.tensor([0, 1]), 3, step=step, overlap=2)
    assert all(torch.equal(a, b) for a, b in zip(codes, join_windows(made)))
    a, b = window_latent(q, made[0]), window_latent(q, made[1])
    assert seen[0] is None
    assert torch.equal(seen[1], torch.cat([a[..., :1], a[..., :1], a[..., :6]], -1))
    rise = torch.tensor([0.25, 0.75])                                  # (i + 1/2) / o
    shared = a[..., 6:] * (1 - rise) + b[..., :2] * rise
    torch.testing.assert_close(seen[2], torch.cat([a[..., 4:6], shared, b[..., 2:6]], -1), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match=r"overlap: must be 0\.\.4 latent frames for windows of 8 frames"):
        generate_windows(model, q, torch.tensor([0]), 2, overlap=5)


def test_side_by_side_context_is_the_last_window_bit_for_bit():
    from nextscale.tokenizer.layout import WindowLayout

    latents = [latent(seed=s) for s in range(3)]
    assert torch.equal(context_before(WindowLayout(8), latents, 3), latents[2])
    assert torch.equal(context_before(WindowLayout(8), latents, 1), latents[0])


def _two_window_cache(tmp_path, n: int = 24):
    from tiny_models import tiny_sat

    sat = tiny_sat()
    sat_dir = sat.save_pretrained(tmp_path / "sat")
    data = ToneData(n, samples=2 * sat.clip_samples)
    build_token_cache(sat, data, tmp_path / "cache", collate, tokenizer_path=sat_dir, batch_size=8, shard_size=10,
                      progress=False)
    return sat, data, tmp_path / "cache"


def test_cache_of_two_window_clips_holds_their_consecutive_windows(tmp_path):
    sat, data, cache = _two_window_cache(tmp_path, n=12)
    ds = TokenCacheDataset(cache)
    assert ds.windows == 2 and ds.codes.shape == (12, 2 * sat.num_tokens)
    # encode clip 5 inside the cache's own first batch (batch_size 8): a batch of one can round a near-tie of the
    # coarsest scale the other way on some CPUs (an AVX2-only VM did), and this test is about the windows' layout
    batch = collate([data[i] for i in range(8)])["audio"]
    windows = split_windows(sat.encode(batch), sat.scales)
    expected = torch.cat([c for window in windows for c in window], dim=1)[5]
    assert torch.equal(ds[5]["codes"].long(), expected)
    ragged = [ToneData(1, samples=2 * sat.clip_samples)[0], ToneData(1, samples=3 * sat.clip_samples)[0]]
    with pytest.raises(DataError, match="tone_0.wav: 960 samples make 3 windows, the cache holds 2 per clip"):
        build_token_cache(sat, ragged, tmp_path / "ragged", collate, tokenizer_path=tmp_path / "sat", batch_size=1,
                          progress=False)


def test_context_aar_learns_to_continue_on_consecutive_windows(tmp_path):
    from nextscale.pipeline import Pipeline
    from nextscale.train.ar import load_ar_train_config, train_ar

    sat, _, cache = _two_window_cache(tmp_path)
    cfg = tiny_ar_config(steps=60, log_every=5)
    cfg["model"] |= {"context_tokens": 4}
    cfg["data"] = {"tokens": str(cache)}
    train_ar(load_ar_train_config(cfg), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.8 * losses[0], (losses[0], losses[-1])     # stated margin: >= 20 % lower

    pipe = Pipeline.from_pretrained(tmp_path / "run" / "pipeline")
    seconds = 3 * sat.clip_samples / sat.sample_rate
    out = pipe.generate(["tone", "bell"], seconds=seconds, cfg=1.0, top_k=0, top_p=0.0, seed=0)
    assert out.audio.shape == (2, 1, 3 * sat.clip_samples) and torch.isfinite(out.audio).all()
    # the default overlap, a sixth of the 20-frame window: 3 frames, so 4 windows make 3 windows' audio
    assert out.overlap == 3 and [c.shape for c in out.codes] == [(2, 4 * n) for n in sat.scales]
    side_by_side = pipe.generate(["tone", "bell"], seconds=seconds, cfg=1.0, top_k=0, top_p=0.0, seed=0, overlap=0)
    assert [c.shape for c in side_by_side.codes] == [(2, 3 * n) for n in sat.scales]
    again = pipe.generate(["tone", "bell"], seconds=seconds, cfg=1.0, top_k=0, top_p=0.0, seed=0)
    assert torch.equal(out.audio, again.audio)

    plain_cache = tmp_path / "plain"
    build_token_cache(sat, ToneData(8, samples=sat.clip_samples), plain_cache, collate, tokenizer_path=tmp_path / "sat",
                      batch_size=8, progress=False)
    cfg["data"] = {"tokens": str(plain_cache)}
    with pytest.raises(ConfigError, match="needs consecutive windows to learn continuation"):
        train_ar(load_ar_train_config(cfg), tmp_path / "run2")


def test_pipeline_without_context_makes_one_window_or_independent_ones():
    from tiny_models import tiny_pipeline

    pipe = tiny_pipeline()
    two = 2 * pipe.sat.clip_samples / pipe.sample_rate
    with pytest.raises(NextscaleError, match="makes single windows"):
        pipe.generate(["tone"], seconds=two)
    out = pipe.generate(["tone"], seconds=two, independent_windows=True, cfg=0.0, seed=0)
    assert out.audio.shape == (1, 1, 2 * pipe.sat.clip_samples)
    assert pipe.generate(["tone"], seconds=two / 2, cfg=0.0, seed=0).audio.shape == (1, 1, pipe.sat.clip_samples)
    with pytest.raises(NextscaleError, match="seconds: expected a positive number"):
        pipe.generate(["tone"], seconds=0)


def test_synth_sequences_string_events_of_one_kind():
    from nextscale.data.synth import synth_clip, synth_sequence

    seq = synth_sequence(5, seed=0, sample_rate=8000, seconds=3.0)
    assert seq.audio.shape == (24000,) and seq.audio.dtype == np.float32 and np.isfinite(seq.audio).all()
    first = synth_clip(5, seed=0, sample_rate=8000, clip_seconds=1.0)
    assert seq.kind == first.kind and seq.label == first.label
    assert seq.caption.startswith(f"{seq.caption.split()[0]} {first.kind} sounds: ")
    assert int(seq.caption.split()[0]) >= 3                      # events start 0.5-1 event lengths apart
    assert np.abs(seq.audio[16000:]).max() > 0                  # the last second is not silence padding
    assert np.array_equal(seq.audio, synth_sequence(5, seed=0, sample_rate=8000, seconds=3.0).audio)
    with pytest.raises(DataError, match="must be at least event_seconds"):
        synth_sequence(0, seconds=0.5)


class SignBackend:
    """A stand-in classifier: class 1 when a window's mean is positive, else class 0 (one row per window)."""

    classes = ["tone", "chord", "siren", "bell"]

    def __init__(self, window: int):
        self.window = window

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        return wav.reshape(wav.shape[0], -1, self.window).mean(-1).reshape(-1, 1)

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot((features[:, 0] > 0).long(), len(self.classes)).float()


def test_window_accuracy_scores_each_window_against_the_clips_condition():
    from nextscale.eval.long_form import window_accuracy

    signs = torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])          # 2 clips x 3 windows of 4 samples
    audio = signs[:, None, :, None].expand(2, 1, 3, 4).reshape(2, 1, 12)
    assert window_accuracy(SignBackend(4), audio, [1, 0]) == [1.0, 0.5, 0.5]
    with pytest.raises(ConfigError, match=r"expected \(N, 1, S\) audio for 3 labels"):
        window_accuracy(SignBackend(4), audio, [1, 0, 0])


def test_long_form_figures_compare_long_clips_with_one_window_and_independent_ones():
    from nextscale.ar.conditioning import ClassConditioner
    from nextscale.eval.long_form import long_form_figures
    from nextscale.pipeline import Pipeline
    from tiny_models import CLASSES, CODEBOOK, LATENT, SCALES as TINY_SCALES, tiny_sat

    torch.manual_seed(1)
    ar = AAR.from_config({"kind": "aar", "depth": 1, "width": 16, "heads": 2, "scales": TINY_SCALES,
                          "codebook_size": CODEBOOK, "latent_dim": LATENT, "condition": "class",
                          "num_classes": len(CLASSES), "cond_dim": 8, "context_tokens": 4}).eval()
    pipe = Pipeline(tiny_sat(), ar, ClassConditioner(CLASSES))
    window = pipe.sat.window_samples
    figures, audio = long_form_figures(pipe, SignBackend(window), ["tone", "chord"], 3 * window / pipe.sample_rate,
                                       cfg=1.0, top_k=0, top_p=0.0)
    assert audio["one_window"].shape == (2, 1, window) and audio["long"].shape == audio["independent"].shape == (2, 1, 3 * window)
    assert figures["windows"] == 3 and len(figures["accuracy_per_window"]) == 3 and figures["clips"] == 2
    assert figures["accuracy_long_mean"] == pytest.approx(float(np.mean(figures["accuracy_per_window"])))
    assert len(figures["join_ratio_context"]["per_clip"]) == 2 and figures["cost_ratio"] > 0

    overlap = pipe.sat.num_frames // 4                                 # 5 of 20 frames: 4 windows for 3 windows' audio
    out = pipe.generate(["tone", "chord"], seconds=3 * window / pipe.sample_rate, overlap=overlap, cfg=1.0, top_k=0,
                        top_p=0.0, seed=0)
    assert out.overlap == overlap and out.audio.shape == (2, 1, 3 * window)
    assert [c.shape for c in out.codes] == [(2, 4 * n) for n in pipe.sat.scales]
    assert torch.equal(pipe.sat.decode(out.codes, length=3 * window, overlap=overlap), out.audio)
    assert pipe.generate(["tone"], seconds=3 * window / pipe.sample_rate, cfg=1.0, seed=0).overlap == 3   # a sixth
    with pytest.raises(NextscaleError, match=r"overlap: must be 0\.\.10 latent frames"):
        pipe.generate(["tone"], seconds=1.0, overlap=11)
    figures, audio = long_form_figures(pipe, SignBackend(window), ["tone", "chord"], 3 * window / pipe.sample_rate,
                                       cfg=1.0, top_k=0, top_p=0.0, overlap=overlap, repeats=2)
    assert figures["overlap_frames"] == overlap and figures["generated_windows"] == 4 and figures["windows"] == 3
    assert audio["long"].shape == audio["independent_crossfaded"].shape == (2, 1, 3 * window)
    assert "centre_mean" in figures["join_ratio_context"] and "join_ratio_independent_crossfaded" in figures


def test_independent_window_figures_judge_what_a_single_window_model_makes_long():
    from nextscale.eval.long_form import independent_window_figures
    from tiny_models import tiny_pipeline

    pipe = tiny_pipeline()                                             # no context tokens
    window, overlap = pipe.sat.window_samples, 5                       # 5 of 20 frames: 4 windows for 3 windows' audio
    seconds, sampling = 3 * window / pipe.sample_rate, dict(cfg=1.0, top_k=0, top_p=0.0)
    figures, audio = independent_window_figures(pipe, SignBackend(window), ["tone", "chord"], seconds, overlap=overlap,
                                                repeats=2, **sampling)
    assert audio["one_window"].shape == (2, 1, window)
    assert audio["long"].shape == audio["side_by_side"].shape == (2, 1, 3 * window)
    made = pipe.generate(["tone", "chord"], seconds=seconds, independent_windows=True, overlap=overlap, seed=0, **sampling)
    assert torch.equal(audio["long"], made.audio)                      # the figures are of what the pipeline makes
    assert figures["generated_windows"] == 4 and len(figures["accuracy_per_window"]) == 3 and figures["clips"] == 2
    assert figures["overlap_frames"] == overlap and figures["cost_ratio"] > 0 and figures["timing"]["repeats"] == 2
    assert len(figures["join_ratio"]["per_clip"]) == len(figures["join_ratio_side_by_side"]["per_clip"]) == 2
    figures, audio = independent_window_figures(pipe, SignBackend(window), ["tone"], seconds, overlap=0, **sampling)
    assert "side_by_side" not in audio and "join_ratio_side_by_side" not in figures and figures["generated_windows"] == 3


def test_coded_joins_score_the_tokenizers_own_reconstruction_at_each_overlap():
    from nextscale.eval.long_form import coded_joins
    from tiny_models import tiny_sat

    sat = tiny_sat()
    t = torch.arange(3 * sat.window_samples) / sat.sample_rate
    audio = torch.stack([0.3 * torch.sin(2 * torch.pi * f * t)[None] for f in (200.0, 310.0, 450.0)])
    figures, coded = coded_joins(sat, audio, [5, 0], batch_size=2)
    assert set(figures) == {"overlap_5", "overlap_0"} and set(coded) == {5, 0}
    for overlap in (5, 0):
        with torch.no_grad():
            direct = sat.decode(sat.encode(audio, overlap=overlap), audio.shape[-1], overlap=overlap)
        torch.testing.assert_close(coded[overlap], direct, atol=1e-5, rtol=1e-4)
        assert len(figures[f"overlap_{overlap}"]["per_clip"]) == 3 and np.isfinite(figures[f"overlap_{overlap}"]["mean"])


def test_bad_window_settings_are_named(tmp_path):
    from nextscale.data import DataConfig
    from nextscale.train.ar import load_ar_train_config, train_ar
    from tiny_models import tiny_sat

    with pytest.raises(ConfigError, match=r"model\.context_dropout: must be in \[0, 1\], got 1.5"):
        tiny(context_dropout=1.5)
    with pytest.raises(ConfigError, match="windows: must be >= 1, got 0"):
        generate_windows(tiny(), StandInQuantizer(SCALES), torch.tensor([0]), 0)
    with pytest.raises(ConfigError, match="data.sequence: only the synthetic corpus renders event sequences"):
        DataConfig(source="folder", path=str(tmp_path), sequence=True)
    sat = tiny_sat()    # a cache that does not record its tokenizer: a context model cannot build its context
    build_token_cache(sat, ToneData(8, samples=2 * sat.clip_samples), tmp_path / "c", collate, batch_size=8,
                      progress=False)
    cfg = tiny_ar_config(kind="next_token", steps=2)
    cfg["model"] |= {"context_tokens": 4}
    cfg["data"] = {"tokens": str(tmp_path / "c")}
    with pytest.raises(ConfigError, match="a context model .* needs the SAT checkpoint the cache was made with"):
        train_ar(load_ar_train_config(cfg), tmp_path / "run")
