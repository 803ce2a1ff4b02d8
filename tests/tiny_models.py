"""Tiny models for pipeline, generate-CLI and conditioning tests: built from configs, saved, and
loaded back through the real loading code (nothing is downloaded)."""
from __future__ import annotations

import json

import torch

from nextscale.ar.conditioning import ClassConditioner

CLASSES = ["tone", "chord", "siren", "bell"]
# 8 kHz, hop 16, 40 ms clips: T = 20 latent frames, 320 samples
SAT_CONFIG = {"sample_rate": 8000, "clip_seconds": 0.04, "n_filters": 4, "dimension": 8, "ratios": [4, 4],
              "lstm_layers": 1, "schedule": "explicit", "kmeans_iters": 5}
SCALES = [1, 3, 6, 10, 20]
CODEBOOK = 16
LATENT = 4


def tiny_sat(scales=SCALES, codebook_size=CODEBOOK, latent_dim=LATENT, seed: int = 0):
    from nextscale.tokenizer.model import SAT

    torch.manual_seed(seed)
    sat = SAT.from_config(SAT_CONFIG | {"scales": list(scales), "codebook_size": codebook_size,
                                        "latent_dim": latent_dim})
    with torch.no_grad():  # one training-mode pass seeds the codebooks (k-means init), as training would
        sat.train()(torch.randn(8, 1, sat.clip_samples) * 0.3)
    return sat.eval()


def tiny_aar(scales=SCALES, codebook_size=CODEBOOK, latent_dim=LATENT, condition="class",
             num_classes=len(CLASSES), cond_dim=8, seed: int = 1):
    from nextscale.ar.next_scale import AAR

    torch.manual_seed(seed)
    return AAR.from_config({"kind": "aar", "depth": 1, "width": 16, "heads": 2, "scales": list(scales),
                            "codebook_size": codebook_size, "latent_dim": latent_dim, "condition": condition,
                            "num_classes": num_classes if condition == "class" else 0, "cond_dim": cond_dim}).eval()


def tiny_pipeline(**aar_kwargs):
    from nextscale.pipeline import Pipeline

    return Pipeline(tiny_sat(), tiny_aar(**aar_kwargs), ClassConditioner(CLASSES))


def build_tiny_clap(directory) -> str:
    """A random ClapModel with a tiny audio (HTSAT) and text tower, a character-level BPE tokenizer
    and a 16-mel feature extractor, saved like a hub checkpoint. Returns the directory."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "Ġ", *letters, *("Ġ" + c for c in letters)]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
    features = ClapFeatureExtractor(feature_size=16, sampling_rate=48000, hop_length=480, max_length_s=1,
                                    fft_window_size=1024, truncation="rand_trunc", padding="repeatpad")
    config = ClapConfig(
        text_config=dict(vocab_size=len(tokens) + 2, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=64),
        audio_config=dict(num_mel_bins=16, spec_size=64, window_size=4, patch_size=2, patch_stride=2,
                          patch_embeds_hidden_size=16, hidden_size=32, depths=[1, 1], num_attention_heads=[2, 2],
                          intermediate_size=37, projection_hidden_size=32),
        projection_dim=24)
    torch.manual_seed(0)
    ClapModel(config).save_pretrained(directory)
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(directory)
    return str(directory)


