"""Scale schedules: the paper's quadratic schedule, the other kinds, and clear rejections."""
from __future__ import annotations

import math

import pytest

from nextscale.errors import ConfigError
from nextscale.tokenizer.schedules import check_schedule, make_schedule, num_frames_for

PAPER = [1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75]


def test_quadratic_reproduces_the_paper_schedule():
    scales = make_schedule("quadratic", 75, 16)
    assert scales == PAPER
    assert sum(scales) == 455


@pytest.mark.parametrize("T", [75, 150, 375, 1000])
def test_quadratic_matches_closed_form_and_ends_at_T(T):
    scales = make_schedule("quadratic", T, 16)
    roots = [1 + (math.sqrt(T) - 1) * i / 15 for i in range(16)]
    expected = [math.floor(r * r + 1e-9) for r in roots[:-1]] + [T]
    assert scales == expected
    assert all(b > a for a, b in zip(scales, scales[1:]))


def test_frames_follow_clip_length():
    assert num_frames_for(1.0, 24000, 320) == 75
    assert num_frames_for(5.0, 24000, 320) == 375
    assert num_frames_for(0.5, 24000, 320) == 38  # ceil(12000 / 320)


@pytest.mark.parametrize("kind", ["linear", "log"])
def test_other_kinds_are_strictly_increasing_and_end_at_T(kind):
    scales = make_schedule(kind, 75, 8)
    assert scales[0] == 1 and scales[-1] == 75 and len(scales) == 8
    assert all(b > a for a, b in zip(scales, scales[1:]))


def test_linear_and_log_values():
    assert make_schedule("linear", 9, 5) == [1, 3, 5, 7, 9]
    assert make_schedule("log", 16, 5) == [1, 2, 4, 8, 16]


def test_rvq_has_every_level_at_T():
    assert make_schedule("rvq", 75, 10) == [75] * 10


def test_explicit_list_is_checked():
    assert make_schedule("explicit", 10, 0, [1, 5, 10]) == [1, 5, 10]


@pytest.mark.parametrize("scales,needle", [
    ([1, 5, 9], "must end at T = 10"),
    ([1, 5, 5, 10], "strictly increasing"),
    ([3, 2, 10], "strictly increasing"),
    ([0, 10], "at least one token"),
    ([], "give the token counts"),
])
def test_bad_explicit_schedules_say_why(scales, needle):
    with pytest.raises(ConfigError, match=needle):
        make_schedule("explicit", 10, 0, scales)


def test_too_many_scales_for_a_short_clip_is_rejected():
    with pytest.raises(ConfigError, match="strictly increasing"):
        make_schedule("quadratic", 5, 16)


def test_unknown_kind_and_bad_counts():
    with pytest.raises(ConfigError, match="unknown kind"):
        make_schedule("cubic", 75, 16)
    with pytest.raises(ConfigError, match="num_scales"):
        make_schedule("linear", 75, 0)
    with pytest.raises(ConfigError, match="RVQ"):
        check_schedule([75, 74, 75], 75, "rvq")
