"""Embedding backends: VGGish front-end and weight loading, CLAP from a saved tiny model, mel, registry."""
import json
import math

import numpy as np
import pytest
import torch

from nextscale.errors import CheckpointError, ConfigError
from nextscale.eval.embeddings import get_embedding
from nextscale.eval.embeddings.mel import mel_filterbank
from nextscale.eval.embeddings.vggish import VGGish, VGGishNet, save_vggish_weights, waveform_to_patches


@pytest.mark.parametrize("seconds,patches", [(1.0, 1), (10.0, 10), (0.5, 0)])
def test_vggish_patch_shape(seconds, patches):
    out = waveform_to_patches(torch.randn(int(16000 * seconds)))
    assert out.shape == (patches, 1, 96, 64) and out.dtype == torch.float32


def test_vggish_front_end_matches_hand_computation():
    """One frame by hand in numpy: periodic Hann, 512-point |rFFT|, HTK triangles 125–7500 Hz, log(+0.01)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=16000) * 0.1
    n = np.arange(400)
    frame = x[160 * 7: 160 * 7 + 400] * (0.5 - 0.5 * np.cos(2 * np.pi * n / 400))
    spec = np.abs(np.fft.rfft(frame, 512))
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)  # noqa: E731
    bins = mel(np.linspace(0, 8000, 257))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    weights = np.zeros((257, 64))
    for i in range(64):
        lo, c, hi = edges[i:i + 3]
        weights[:, i] = np.maximum(0, np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)))
    weights[0] = 0
    expected = np.log(spec @ weights + 0.01)
    got = waveform_to_patches(torch.from_numpy(x))[0, 0, 7].double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mel_filterbank(16000, 512, 64, 125.0, 7500.0).numpy(), weights, atol=1e-12)


@pytest.fixture(scope="module")
def vggish_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("vggish")
    torch.manual_seed(0)
    net = VGGishNet().eval()
    rng = np.random.default_rng(0)
    pca = (rng.normal(size=(128, 128)).astype(np.float32), rng.normal(size=128).astype(np.float32))
    save_vggish_weights(net, d / "vggish-test.pth", pca, d / "pca.pth")
    return net, pca, d


def test_vggish_weights_load_exactly(vggish_files):
    net, (vectors, means), d = vggish_files
    wav = torch.randn(2, 1, 16000 * 2) * 0.1
    patches = torch.cat([waveform_to_patches(w[0]) for w in wav])
    with torch.no_grad():
        expected = net.embeddings[:-1](net.features(patches).permute(0, 2, 3, 1).flatten(1))
    backend = get_embedding("vggish", weights=str(d / "vggish-test.pth"))
    got = backend.embed(wav)
    assert got.shape == (4, 128)
    assert torch.equal(got, expected)
    # PCA post-processing: (x - mean) · Vᵀ, clip to [-2, 2], quantise to 0..255
    post = get_embedding("vggish", weights=str(d / "vggish-test.pth"), pca=str(d / "pca.pth"), postprocess=True).embed(wav)
    ref = np.round((np.clip((expected.double().numpy() - means) @ vectors.T.astype(np.float64), -2, 2) + 2) * 255 / 4)
    np.testing.assert_array_equal(post.numpy(), ref)


def test_vggish_missing_or_wrong_file(tmp_path):
    with pytest.raises(CheckpointError, match="harritaylor/torchvggish"):
        get_embedding("vggish", weights=str(tmp_path / "nope.pth"))
    with pytest.raises(CheckpointError, match="--vggish-weights"):
        get_embedding("vggish")
    torch.save({"something": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="features"):
        get_embedding("vggish", weights=str(tmp_path / "bad.pth"))


def _tiny_clap(directory):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ClapConfig(
        text_config=dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=40, projection_dim=8),
        audio_config=dict(hidden_size=16, depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=8,
                          projection_dim=8, window_size=4, spec_size=128, num_mel_bins=64),
        projection_dim=8)
    torch.manual_seed(0)
    model = transformers.ClapModel(cfg).eval()
    model.save_pretrained(directory)
    transformers.ClapFeatureExtractor(feature_size=64, max_length_s=1, truncation="rand_trunc").save_pretrained(directory)
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", "Ġ", *"abcdefghijklmnopqrstuvwxyz"])}
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    transformers.RobertaTokenizerFast(vocab_file=str(directory / "vocab.json"),
                                      merges_file=str(directory / "merges.txt")).save_pretrained(directory)
    return model


def test_clap_from_saved_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = _tiny_clap(tmp_path)
    backend = get_embedding("clap", model=str(tmp_path))
    assert backend.sample_rate == 48000 and backend.dim == 8
    wav = torch.randn(3, 1, 48000) * 0.1
    emb = backend.embed(wav)
    assert emb.shape == (3, 8)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    # same numbers as running the in-memory model on the same features: the load path is exact
    inputs = backend.features([w[0].numpy() for w in wav], sampling_rate=48000, return_tensors="pt")
    with torch.no_grad():
        out = model.get_audio_features(**inputs)
    torch.testing.assert_close(emb, out if isinstance(out, torch.Tensor) else out.pooler_output)
    scores = backend.score(["a bell", "a dog", "rain"], emb)
    assert scores.shape == (3,) and bool((scores.abs() <= 1 + 1e-5).all())
    with pytest.raises(CheckpointError, match="could not be loaded"):
        get_embedding("clap", model=str(tmp_path / "missing"))


def test_mel_backend_is_labelled_smoke_only():
    backend = get_embedding("mel")
    assert backend.smoke_only and backend.dim == 64
    emb = backend.embed(torch.randn(2, 1, 16000))
    assert emb.shape == (2 * (16000 // 160 + 1), 64) and torch.isfinite(emb).all()


def test_registry_errors():
    with pytest.raises(ConfigError, match="choose one of synth, vggish, clap, mel"):
        get_embedding("openl3")
    with pytest.raises(ConfigError, match="train-classifier"):
        get_embedding("synth")
    with pytest.raises(ConfigError, match="unknown option"):
        get_embedding("mel", weights="x")
