"""benchmarks/class_gain.py: the data side of the per-scale class gain, against its closed form."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from bench_scripts import load_script
from tiny_models import tiny_pipeline

from nextscale.errors import NextscaleError

class_gain = load_script("class_gain")


def test_data_gain_of_tokens_that_name_their_class_is_the_smoothed_log_ratio():
    # 2n clips alternate classes 3 / 5; position 0 always holds token 0 for class 3 and token 1 for class 5,
    # position 1 is token 2 for both (carries nothing). Fitted on the first half: n/2 clips per class.
    n, vocab = 40, 4
    labels = np.array([3, 5] * n)
    tokens = np.stack([np.where(labels == 3, 0, 1), np.full(2 * n, 2)], axis=1)
    per_class = n // 2
    own = (per_class + 0.5) / (per_class + vocab * 0.5)
    other = 0.5 / (per_class + vocab * 0.5)
    assert class_gain.data_gain(tokens, labels, 3, 5, vocab) == pytest.approx(math.log(own / other))


def test_data_gain_is_zero_when_the_classes_share_their_token_frequencies():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 200)
    tokens = rng.integers(0, 8, size=(400, 3))
    tokens[1::2] = tokens[0::2]          # class 1's clips copy class 0's tokens, in both halves
    assert class_gain.data_gain(tokens, labels, 0, 1, 8) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kwargs,pair,needle", [
    ({}, "tone,kick", "--pair: expected two of the model's synthetic classes"),
    ({}, "tone", "--pair: expected two"),
    ({"kind": "next_token"}, "tone,chord", "needs a class-conditioned next-scale"),
])
def test_bad_model_or_pair_is_named_before_any_work(tmp_path, kwargs, pair, needle):
    pipe = tiny_pipeline()
    if kwargs:      # the same AR recipe as a next-token model
        from nextscale.ar.next_token import NextTokenAR
        pipe.ar = NextTokenAR.from_config(dataclasses.asdict(pipe.ar.config) | kwargs).eval()
    model = pipe.save_pretrained(tmp_path / "pipe")
    with pytest.raises(NextscaleError, match=needle):
        class_gain.main(model=str(model), pair=pair, clips=2, threads=1, out=tmp_path)
    assert not (tmp_path / "class_gain_cpu.json").exists()
