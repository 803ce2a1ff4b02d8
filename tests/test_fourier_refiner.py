"""The Fourier decoder's refiner: a CNN along the bins after the head, the same at every bin, zero at first."""
from __future__ import annotations

import pytest
import torch

from nextscale.errors import ConfigError
from nextscale.tokenizer.fourier import FourierDecoder, FrequencyRefiner
from nextscale.tokenizer.model import SAT, SATConfig

from tiny_fourier import TINY, train_tiny


def randomised(refiner: FrequencyRefiner) -> FrequencyRefiner:
    torch.manual_seed(1)
    for p in refiner.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return refiner


@pytest.mark.parametrize("phase", ["cumulative", "partials"])
def test_a_new_refiner_leaves_the_heads_first_two_numbers_unchanged(phase):
    torch.manual_seed(0)
    dec = FourierDecoder(240, 80, width=16, layers=1, mlp_ratio=2.0, dimension=8, phase=phase, refiner=8)
    z = torch.randn(2, 8, 10)
    raw = dec.head(dec.backbone(z)).unflatten(1, (FrequencyRefiner.channels, -1))
    first, second = dec.head_output(dec.backbone(z))
    torch.testing.assert_close(first, raw[:, 0])
    torch.testing.assert_close(second, raw[:, 1])
    assert dec.head.out_channels == FrequencyRefiner.channels * 121


def test_the_refiner_is_one_convolution_along_the_bins_and_keeps_resolutions_apart():
    """Shifting the input along the bins shifts the correction (away from the edges), and a change in one
    resolution's bins never reaches the other's."""
    refiner = randomised(FrequencyRefiner([121, 281], hidden=8)).double()
    x = torch.randn(1, FrequencyRefiner.channels, 402, 5, dtype=torch.float64)
    y = refiner(x)
    assert y.shape == (1, 2, 402, 5)
    shifted = refiner(torch.roll(x, 4, dims=2))
    torch.testing.assert_close(shifted[:, :, 20:110], y[:, :, 16:106])
    bumped = x.clone()
    bumped[:, :, 120] += 5.0                                      # the first resolution's last bin
    changed = (refiner(bumped) - y).abs().amax(dim=(0, 1, 3))
    assert changed[114:121].sum() > 0 and changed[121:].sum() == 0


def test_sat_with_a_refiner_trains_saves_and_round_trips(tmp_path):
    rows = train_tiny(tmp_path, {"fourier_phase": "cumulative", "fourier_refiner": 8})
    assert rows[-1]["mel"] <= 0.6 * rows[0]["mel"], (rows[0]["mel"], rows[-1]["mel"])
    sat = SAT.from_pretrained(tmp_path / "tokenizer")
    assert sat.config.fourier_refiner == 8 and sat.decoder.refiner is not None
    assert sat.decoder.refiner.net[-1].weight.abs().sum() > 0          # trained away from its zero start
    wav = 0.2 * torch.randn(2, 1, sat.clip_samples)
    with torch.no_grad():
        out = sat(wav)
    torch.testing.assert_close(sat.decode(sat.encode(wav)), out.audio, atol=1e-6, rtol=0)


def test_a_negative_refiner_width_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"model\.fourier_refiner.*>= 0.*-4"):
        SATConfig(**TINY | {"fourier_refiner": -4})
