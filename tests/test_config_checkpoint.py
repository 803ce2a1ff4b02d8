"""Config validation and atomic model directories."""
from __future__ import annotations

import dataclasses
import json
from typing import Literal

import pytest
import torch

from nextscale.checkpoint import Pretrained, read_model_files

from nextscale.io import atomic_directory
from nextscale.config import load_config
from nextscale.errors import CheckpointError, ConfigError


@dataclasses.dataclass
class Inner:
    latent_dim: int = 8
    schedule: str | list[int] = "quadratic"


@dataclasses.dataclass
class Outer:
    name: str = "x"
    lr: float = 1e-3
    mode: Literal["a", "b"] = "a"
    model: Inner = dataclasses.field(default_factory=Inner)


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 2\nmodel:\n  latent_dim: 16\n")
    cfg = load_config(p, Outer, ["model.schedule=[1, 2, 4]", "mode=b"])
    assert cfg.lr == 2.0 and isinstance(cfg.lr, float)
    assert cfg.model.latent_dim == 16 and cfg.model.schedule == [1, 2, 4] and cfg.mode == "b"


@pytest.mark.parametrize("text,value", [("2e-3", 2e-3), ("1E5", 1e5), ("-3.5e-4", -3.5e-4), (".5e1", 5.0)])
def test_scientific_floats_without_a_dot(tmp_path, text, value):
    """PyYAML reads `2e-3` as a string (YAML 1.1 wants `2.0e-3`); a float field still takes it."""
    p = tmp_path / "c.yaml"
    p.write_text(f"lr: {text}\n")
    assert load_config(p, Outer).lr == value
    assert load_config(None, Outer, [f"lr={text}"]).lr == value
    with pytest.raises(ConfigError, match="lr: expected a number"):
        load_config(None, Outer, ["lr=2e-3x"])


@pytest.mark.parametrize("data,needle", [
    ({"modell": {}}, "unknown config key 'modell'; did you mean 'model'"),
    ({"model": {"latent_dim": "big"}}, "model.latent_dim: expected an integer"),
    ({"model": {"latent_dim": True}}, "model.latent_dim: expected an integer"),
    ({"mode": "c"}, "mode: expected one of 'a', 'b'"),
    ({"model": {"schedule": 3.5}}, "model.schedule"),
])
def test_bad_configs_name_the_key(data, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        load_config(data, Outer)


def test_bad_override_and_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'model.nope'"):
        load_config(None, Outer, ["model.nope.x=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, Outer, ["lr"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: expected a mapping"):
        load_config(bad, Outer)


class Tiny(torch.nn.Module, Pretrained):
    kind = "tiny"
    config_class = Inner

    def __init__(self, config: Inner):
        super().__init__()
        self.config = config
        self.lin = torch.nn.Linear(config.latent_dim, 3)


def test_pretrained_roundtrip_is_bitwise(tmp_path):
    m = Tiny.from_config({"latent_dim": 5})
    m.save_pretrained(tmp_path / "m")
    m2 = Tiny.from_pretrained(tmp_path / "m")
    assert m2.config == m.config
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    assert m.num_parameters() == 5 * 3 + 3


def test_checkpoint_errors(tmp_path):
    m = Tiny.from_config(None)
    m.save_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match="holds a 'tiny' model, expected 'sat'"):
        read_model_files(tmp_path / "m", "sat")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        Tiny.from_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match="not found"):
        Tiny.from_pretrained(tmp_path / "nowhere")
    other = Tiny.from_config({"latent_dim": 4})
    other.save_pretrained(tmp_path / "o")
    cfg = json.loads((tmp_path / "o" / "config.json").read_text())
    cfg["config"]["latent_dim"] = 6
    (tmp_path / "o" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatch lin.weight"):
        Tiny.from_pretrained(tmp_path / "o")


def test_atomic_directory_keeps_old_on_failure(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as d:
        (d / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as d:
            (d / "a.txt").write_text("new")
            raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
