"""When the callback and Cryptum's API disagree: the verdict, row by row."""

from __future__ import annotations

import pytest

from bridge.confirmation import Verdict, api_lags, judge

RECEIVED = 1_000_000.0
RECHECK = 300.0
LOOKBACK = 48 * 3600.0


def verdict(claimed: str, api: str, after: float) -> Verdict:
    return judge(
        claimed,
        api,
        now=RECEIVED + after,
        received_at=RECEIVED,
        recheck_seconds=RECHECK,
        lookback_seconds=LOOKBACK,
    )


@pytest.mark.parametrize(
    ("claimed", "api", "lags"),
    [
        ("confirmed", "pending", True),
        ("confirmed", "on-hold", True),
        ("on-hold", "pending", True),
        ("cancelled", "pending", True),
        ("failed", "on-hold", True),
        ("confirmed", "confirmed", False),
        ("confirmed", "cancelled", False),  # settled elsewhere: not a lag
        ("pending", "confirmed", False),  # the API is ahead
        ("on-hold", "confirmed", False),
        ("pending", "pending", False),
        ("expired", "pending", False),  # an unknown claim changes nothing: never waited for
        ("confirmed", "refunded", False),  # an unknown API status counts as final
    ],
)
def test_a_lag_is_an_api_behind_the_callbacks_claim(claimed: str, api: str, lags: bool) -> None:
    assert api_lags(claimed, api) is lags


def test_agreement_is_acted_on_at_once() -> None:
    assert verdict("confirmed", "confirmed", 0) is Verdict.ACT


def test_a_lagging_api_is_awaited_until_the_lookback_ends() -> None:
    assert verdict("confirmed", "pending", 0) is Verdict.AWAIT_API
    # Well past the recheck window: still waiting, never acting on "pending".
    assert verdict("confirmed", "pending", RECHECK + 1) is Verdict.AWAIT_API
    assert verdict("confirmed", "on-hold", LOOKBACK - 1) is Verdict.AWAIT_API
    assert verdict("confirmed", "pending", LOOKBACK) is Verdict.GIVE_UP


def test_an_api_ahead_of_the_callback_is_acted_on_at_once() -> None:
    # A pending callback arriving after the payment confirmed must not hold it back.
    assert verdict("pending", "confirmed", 0) is Verdict.ACT
    assert verdict("on-hold", "confirmed", 0) is Verdict.ACT
    assert verdict("pending", "on-hold", 0) is Verdict.ACT


def test_two_final_statuses_are_rechecked_then_the_api_wins() -> None:
    assert verdict("confirmed", "cancelled", 0) is Verdict.RECHECK
    assert verdict("cancelled", "confirmed", RECHECK - 1) is Verdict.RECHECK
    assert verdict("confirmed", "cancelled", RECHECK) is Verdict.ACT
    # An unknown claim is no stage: the API's status is checked again, then acted on.
    assert verdict("expired", "confirmed", 0) is Verdict.RECHECK
    assert verdict("expired", "confirmed", RECHECK) is Verdict.ACT
