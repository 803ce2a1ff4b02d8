"""Shared file I/O (nextscale.io) and the one kind -> class table (checkpoint.load_model)."""
from __future__ import annotations

import json

import pytest
import torch

from nextscale.checkpoint import MODEL_CLASSES, load_model, model_class
from nextscale.errors import CheckpointError, DataError
from nextscale.io import atomic_write_json, atomic_write_with, iter_jsonl, read_json, read_text

from tiny_models import tiny_aar, tiny_sat


def test_atomic_write_with_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "sub" / "data.bin"
    atomic_write_with(path, lambda name: open(name, "wb").write(b"first"))
    assert path.read_bytes() == b"first"

    def failing(name):
        open(name, "wb").write(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write_with(path, failing)
    assert path.read_bytes() == b"first"                               # the old file survives
    assert [p.name for p in path.parent.iterdir()] == ["data.bin"]     # no temporary left behind


def test_json_and_jsonl_errors_name_file_and_line(tmp_path):
    good = tmp_path / "a.json"
    atomic_write_json(good, {"x": [1, 2]})
    assert read_json(good, DataError) == {"x": [1, 2]}
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        read_json(tmp_path / "bad.json", DataError)
    rows = tmp_path / "r.jsonl"
    rows.write_text('{"a": 1}\n\n{"a": 2}\n[3]\n{"a": 4\n')
    with pytest.raises(DataError, match=r"r\.jsonl line 4: expected a JSON object, got list"):
        list(iter_jsonl(rows, DataError))
    assert list(iter_jsonl(rows, DataError, skip_torn=True)) == [(1, {"a": 1}), (3, {"a": 2})]
    with pytest.raises(DataError, match=r"gone\.jsonl: metrics file not found"):
        list(iter_jsonl(tmp_path / "gone.jsonl", DataError, what="metrics file"))


def test_read_text_allows_a_bom_and_names_a_bad_byte(tmp_path):
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfhello\n")
    assert read_text(tmp_path / "bom.txt", DataError) == "hello\n"
    (tmp_path / "latin.txt").write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"latin\.txt: not UTF-8 text: byte 0xe9 at byte offset 6 \(line 2\)"):
        read_text(tmp_path / "latin.txt", DataError)


def test_load_model_builds_the_kind_config_json_names(tmp_path):
    sat, aar = tiny_sat(), tiny_aar()
    sat.save_pretrained(tmp_path / "sat")
    aar.save_pretrained(tmp_path / "ar")
    for original, directory in ((sat, tmp_path / "sat"), (aar, tmp_path / "ar")):
        loaded = load_model(directory)
        assert type(loaded) is type(original) and not loaded.training
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), original.state_dict().values()))
    with pytest.raises(CheckpointError, match=r"holds a 'sat' model, expected 'aar' or 'next_token'"):
        load_model(tmp_path / "sat", kinds=("aar", "next_token"))
    header = json.loads((tmp_path / "ar" / "config.json").read_text())
    (tmp_path / "ar" / "config.json").write_text(json.dumps(header | {"kind": "vocoder"}))
    with pytest.raises(CheckpointError, match="unknown model kind 'vocoder'"):
        load_model(tmp_path / "ar")


def test_every_registered_kind_is_its_class_kind():
    for kind in MODEL_CLASSES:
        assert model_class(kind).kind == kind


def test_one_fit_rule_for_tokenizer_and_ar_config():
    from nextscale.ar.config import ARConfig, check_quantizer, fit_problems, tokenizer_fit
    from nextscale.errors import ConfigError

    sat = tiny_sat()
    cfg = ARConfig.for_tokenizer(sat, depth=1, width=32, heads=1, cond_dim=8)
    assert (cfg.scales, cfg.codebook_size, cfg.latent_dim) == (sat.scales, sat.codebook_size, sat.latent_dim)
    assert tokenizer_fit(sat.quantizer) == tokenizer_fit(sat)          # a SAT or its quantizer alike
    assert fit_problems(cfg, sat) == []
    other = ARConfig(**{**cfg.__dict__, "codebook_size": cfg.codebook_size * 2})
    assert fit_problems(other, sat) == [f"tokenizer codebook_size {sat.codebook_size} != AR model codebook_size "
                                        f"{2 * sat.codebook_size}"]
    with pytest.raises(ConfigError, match="codebook_size"):
        check_quantizer(other, sat.quantizer)
    with pytest.raises(ConfigError, match="latent_dim given differently"):
        ARConfig.for_tokenizer(sat, latent_dim=sat.latent_dim + 1)
