"""The token bucket behind the unsigned-callback cap, on a clock the tests move."""

from __future__ import annotations

import pytest

from bridge.errors import RateLimitedError
from bridge.rate_limit import StoreLimits, TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def take_all(bucket: TokenBucket) -> int:
    """Take tokens until refused; how many were taken."""
    taken = 0
    while bucket.try_take() is None:
        taken += 1
        assert taken <= 10_000
    return taken


def test_a_full_bucket_gives_its_cap_then_says_how_long_to_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(3, clock=clock)
    assert [bucket.try_take() for _ in range(3)] == [None, None, None]
    assert bucket.try_take() == pytest.approx(20.0)  # one token every 60 / 3 seconds


def test_the_wait_shrinks_as_time_passes() -> None:
    clock = FakeClock()
    bucket = TokenBucket(3, clock=clock)
    take_all(bucket)
    clock.advance(15)
    assert bucket.try_take() == pytest.approx(5.0)
    clock.advance(5)
    assert bucket.try_take() is None
    assert bucket.try_take() == pytest.approx(20.0)


def test_a_minute_refills_the_whole_cap_and_no_more() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock)
    assert take_all(bucket) == 60
    clock.advance(60)
    assert take_all(bucket) == 60
    clock.advance(3600)  # idle for an hour: still only one minute's worth
    assert take_all(bucket) == 60


@pytest.mark.parametrize("start", [0.0, 987654.321])
@pytest.mark.parametrize("per_minute", [3, 7, 11, 13, 60, 1000])
def test_each_interval_of_60_over_the_cap_gives_exactly_one_more(
    start: float, per_minute: int
) -> None:
    # Refills are float sums (7 steps of 60/7 s may come to 0.9999999 of a
    # token): each interval must still give exactly one token, no fewer.
    clock = FakeClock(now=start)
    bucket = TokenBucket(per_minute, clock=clock)
    take_all(bucket)
    for _ in range(2 * per_minute):
        clock.advance(60 / per_minute)
        assert bucket.try_take() is None
        assert bucket.try_take() is not None


def test_a_token_given_back_can_be_taken_again() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, clock=clock)
    take_all(bucket)
    bucket.give_back()
    assert bucket.try_take() is None
    assert bucket.try_take() is not None


def test_giving_back_never_overfills() -> None:
    bucket = TokenBucket(2, clock=FakeClock())
    bucket.give_back()
    bucket.give_back()
    assert take_all(bucket) == 2


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, clock=clock)
    take_all(bucket)
    clock.advance(-3600)
    assert bucket.try_take() == pytest.approx(30.0)


def test_raising_the_cap_frees_the_difference_at_once() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, clock=clock)
    take_all(bucket)
    bucket.set_per_minute(5)
    assert bucket.per_minute == 5
    assert take_all(bucket) == 3
    assert bucket.try_take() == pytest.approx(12.0)  # and refills at the new pace


def test_lowering_the_cap_keeps_what_was_used() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock)
    bucket.try_take()
    bucket.try_take()
    bucket.set_per_minute(3)  # 2 of 5 used: 1 of 3 left
    assert take_all(bucket) == 1
    bucket.set_per_minute(1)
    assert bucket.try_take() == pytest.approx(60.0)


@pytest.mark.parametrize("per_minute", [0, -1])
def test_a_cap_below_one_is_refused(per_minute: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TokenBucket(per_minute, clock=FakeClock())
    with pytest.raises(ValueError, match="at least 1"):
        TokenBucket(1, clock=FakeClock()).set_per_minute(per_minute)


def test_each_store_has_its_own_bucket() -> None:
    limits = StoreLimits(clock=FakeClock())
    assert take_all(limits.bucket("main", 2)) == 2
    assert take_all(limits.bucket("second", 2)) == 2
    assert limits.bucket("main", 2).try_take() is not None


def test_a_new_config_changes_a_stores_cap_and_keeps_its_use() -> None:
    limits = StoreLimits(clock=FakeClock())
    bucket = limits.bucket("main", 2)
    take_all(bucket)
    limits.configure({"main": 4})
    assert limits.bucket("main", 2) is bucket
    assert bucket.per_minute == 4
    assert take_all(bucket) == 2


def test_a_request_under_the_old_config_does_not_put_the_old_cap_back() -> None:
    limits = StoreLimits(clock=FakeClock())
    limits.bucket("main", 2)
    limits.configure({"main": 4})
    assert limits.bucket("main", 2).per_minute == 4


def test_a_store_gone_from_the_config_loses_its_bucket() -> None:
    limits = StoreLimits(clock=FakeClock())
    take_all(limits.bucket("gone", 2))
    take_all(limits.bucket("kept", 2))
    limits.configure({"kept": 2})
    assert take_all(limits.bucket("gone", 2)) == 2  # made afresh if it ever comes back
    assert take_all(limits.bucket("kept", 2)) == 0


@pytest.mark.parametrize(
    ("wait", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (19.01, "20"), (60.0, "60")]
)
def test_the_429_says_when_to_retry_in_whole_seconds_rounded_up(wait: float, header: str) -> None:
    error = RateLimitedError("rate_limited", retry_after_seconds=wait)
    assert (error.status, error.body()) == (429, {"error": "rate_limited"})
    assert error.headers() == {"Retry-After": header}
