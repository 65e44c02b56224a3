"""Backoff: growth, cap, jitter range, Retry-After."""

from __future__ import annotations

import math

import pytest

from bridge.backoff import retry_delay


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 5), (2, 10), (3, 20), (8, 640), (9, 1000), (500, 1000)]
)
def test_the_window_doubles_up_to_the_maximum(attempt: int, ceiling: float) -> None:
    assert retry_delay(attempt, initial=5, maximum=1000, random=lambda: 1.0) == ceiling
    assert retry_delay(attempt, initial=5, maximum=1000, random=lambda: 0.0) == 0


def test_full_jitter_scales_the_window() -> None:
    assert retry_delay(3, initial=5, maximum=1000, random=lambda: 0.25) == 5


def test_retry_after_is_a_floor() -> None:
    assert retry_delay(1, initial=5, maximum=1000, retry_after=120, random=lambda: 0.5) == 120
    assert retry_delay(9, initial=5, maximum=1000, retry_after=1, random=lambda: 0.5) == 500


@pytest.mark.parametrize("attempt", [1, 3, 40])
@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_a_retry_after_beyond_the_maximum_is_capped_to_it(attempt: int, draw: float) -> None:
    ten_days = 10 * 24 * 3600
    delay = retry_delay(attempt, initial=5, maximum=3600, retry_after=ten_days, random=lambda: draw)
    assert delay == 3600


def test_a_retry_after_below_the_maximum_is_still_a_floor() -> None:
    assert retry_delay(1, initial=5, maximum=3600, retry_after=3599, random=lambda: 0.0) == 3599
    assert retry_delay(20, initial=5, maximum=3600, retry_after=600, random=lambda: 0.1) == 600


@pytest.mark.parametrize("attempt", [63, 64, 1100, 10**9])
def test_the_window_stops_growing_at_two_to_the_62_windows_before_floats_overflow(
    attempt: int,
) -> None:
    # With no useful maximum, a delivery retried for ever must still get a
    # finite, fixed window rather than an OverflowError at attempt ~1025.
    delay = retry_delay(attempt, initial=0.5, maximum=math.inf, random=lambda: 1.0)
    assert delay == 0.5 * 2.0**62
