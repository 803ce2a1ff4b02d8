"""Token cache: codes equal a direct encode, shards round-trip, interrupted runs resume, mismatches refused."""
from __future__ import annotations

import json

import pytest
import torch

from nextscale.errors import DataError
from nextscale.train.token_cache import TokenCacheDataset, build_token_cache, collate_tokens
from train_data import ToneData, collate, make_cache


def test_cache_matches_direct_encoding(tmp_path):
    sat_dir, cache, sat = make_cache(tmp_path, n=12, shard_size=5)
    index = json.loads((cache / "index.json").read_text())
    assert index["complete"] and index["count"] == 12 and index["scales"] == sat.scales
    assert [s["count"] for s in index["shards"]] == [5, 5, 2]
    assert index["dtype"] == "int16" and len(index["tokenizer_sha256"]) == 64
    ds = TokenCacheDataset(cache)
    assert ds.codes.dtype == torch.int16 and ds.classes == ToneData.classes
    data = ToneData(12)
    for i in (0, 7, 11):
        expected = torch.cat(sat.encode(data[i]["audio"][None]), dim=1)[0]
        assert torch.equal(ds[i]["codes"], expected)
        assert ds[i]["label"] == i % 4 and ds[i]["caption"] == data[i]["caption"]
    batch = collate_tokens([ds[0], ds[1]])
    assert batch["codes"].shape == (2, sum(sat.scales)) and batch["codes"].dtype == torch.long


def test_interrupted_cache_resumes_and_keeps_finished_shards(tmp_path):
    sat_dir, cache, sat = make_cache(tmp_path, n=12, shard_size=5)
    before = TokenCacheDataset(cache).codes.clone()
    (cache / "shard_00001.safetensors").unlink()          # the run died while writing shard 1
    index = json.loads((cache / "index.json").read_text())
    (cache / "index.json").write_text(json.dumps(index | {"complete": False}))
    with pytest.raises(DataError, match="incomplete"):
        TokenCacheDataset(cache)
    data = ToneData(12)
    build_token_cache(sat, data, cache, collate, tokenizer_path=sat_dir, batch_size=8, shard_size=5, progress=False)
    assert data.calls == 5                                  # only the missing shard was encoded again
    assert torch.equal(TokenCacheDataset(cache).codes, before)


def test_rerun_with_another_tokenizer_is_refused(tmp_path):
    from tiny_models import tiny_sat

    sat_dir, cache, _ = make_cache(tmp_path, n=6, shard_size=5)
    other = tiny_sat(seed=5)
    other_dir = other.save_pretrained(tmp_path / "other")
    with pytest.raises(DataError, match="tokenizer_sha256"):
        build_token_cache(other, ToneData(6), cache, collate, tokenizer_path=other_dir, shard_size=5, progress=False)


def test_missing_cache_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a token cache"):
        TokenCacheDataset(tmp_path)


def test_cache_tokens_encodes_a_data_config_with_section_prefixed_overrides(tmp_path):
    """`nextscale cache-tokens` in one call: the SAT's directory, a synthetic data section, class ids."""
    from nextscale.data.synth import KINDS
    from nextscale.errors import ConfigError
    from nextscale.train.token_cache import cache_tokens
    from nextscale.tokenizer.model import SAT
    from tiny_models import SAT_CONFIG

    sat = SAT.from_config(SAT_CONFIG | {"clip_seconds": 0.25, "scales": [1, 25, 125], "codebook_size": 16,
                                        "latent_dim": 4})     # the synthetic corpus's shortest clip
    sat_dir = sat.eval().save_pretrained(tmp_path / "sat")
    index, clips, tokens = cache_tokens(sat_dir, tmp_path / "cache", batch_size=4,
                                        overrides=["data.source=synth", "data.n=6", f"data.sample_rate={sat.sample_rate}",
                                                   f"clip_seconds={sat.clip_samples / sat.sample_rate}"], device="cpu", progress=False)
    ds = TokenCacheDataset(index.parent)
    assert (clips, tokens, len(ds)) == (6, sat.num_tokens, 6) and ds.classes == list(KINDS)
    assert json.loads(index.read_text())["data"]["n"] == 6
    with pytest.raises(ConfigError, match="--conditioner: expected class, text or clap, got 'mel'"):
        cache_tokens(sat_dir, tmp_path / "other", conditioner="mel", device="cpu", progress=False)
