"""benchmarks/tokenizer_recipe.py `--base demo` trains exactly what the demo's tokenizer stage trains."""
from __future__ import annotations

import pytest

from bench_scripts import load_script


def _load():
    return load_script("tokenizer_recipe")


def test_demo_base_is_the_demo_stage_with_the_variant_steps_and_overrides(tmp_path):
    from nextscale.demo import PRESETS, Demo, tokenizer_stage_config
    from nextscale.train.tokenizer import load_sat_train_config

    bench = _load()
    demo = load_sat_train_config(tokenizer_stage_config(Demo(tmp_path, "default", progress=False)))
    steps = PRESETS["default"].sat_steps
    same = load_sat_train_config(bench.train_config([], steps, "cpu", bench.demo_base()))
    assert same.model == demo.model and same.loss == demo.loss and same.optim == demo.optim and same.data == demo.data
    assert same.train.batch_size == demo.train.batch_size and same.train.steps == demo.train.steps
    varied = load_sat_train_config(bench.train_config(["train.batch_size=8", "loss.pitch_weight=10"], 500, "cpu",
                                                      bench.demo_base()))
    assert (varied.train.batch_size, varied.loss.pitch_weight, varied.train.steps) == (8, 10.0, 500)
    assert varied.optim.warmup_steps == 25 and varied.model == demo.model


def test_base_names_pick_config_clips_and_results_file():
    from nextscale.errors import ConfigError

    bench = _load()
    assert bench.resolve_base("legacy", "cpu")[1:] == (bench.N_HELDOUT, "tokenizer_recipe_cpu.json")
    assert bench.resolve_base("demo", "cuda")[1:] == (240, "tokenizer_recipe_demo_cuda.json")
    with pytest.raises(ConfigError, match="--base: expected 'legacy' or 'demo', got 'demos'"):
        bench.resolve_base("demos", "cpu")
