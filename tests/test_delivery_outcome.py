"""How an attempt ends, row by row: after a plan, after a failure, while the API lags."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.delivery_outcome import (
    Applied,
    Dead,
    RetryAt,
    RetryKind,
    RetryPolicy,
    Skipped,
    after_failure,
    after_plan,
    awaiting_cryptum,
)
from bridge.delivery_plan import Plan
from bridge.upstream import FailureKind, UpstreamFailure

NOW = 1_000_000.0
POLICY = RetryPolicy(
    initial_seconds=5,
    max_seconds=600,
    max_age_seconds=72 * 3600,
    recheck_lag_seconds=300,
    lookback_seconds=48 * 3600,
)


def plan(**fields: Any) -> Plan:
    defaults: dict[str, Any] = {
        "kind": "pay",
        "reason": "payment confirmed",
        "target_status": "processing",
        "changes": {"set_paid": True},
        "note": "Paid. [marker]",
        "payment_status": "confirmed",
    }
    return Plan(**(defaults | fields))


# After a plan ---------------------------------------------------------------------------


def test_a_plan_that_changed_the_order_is_applied_with_its_status() -> None:
    assert after_plan(plan(), "confirmed", "pending") == Applied(
        status="confirmed", action="pay", target_status="processing", reason="payment confirmed"
    )
    assert after_plan(plan(), "confirmed", "pending").summary == "pay: payment confirmed"


def test_a_note_alone_is_applied_too() -> None:
    outcome = after_plan(plan(kind="note_only", changes=None, target_status=None), "x", "cancelled")
    assert isinstance(outcome, Applied)


def test_a_plan_that_changes_nothing_is_skipped_yet_its_status_applied() -> None:
    nothing = plan(kind="nothing", reason="already paid", changes=None, note=None)
    skipped = after_plan(nothing, "confirmed", "completed")
    assert skipped == Skipped(
        "already paid", status="confirmed", order_status="completed", action="nothing"
    )
    assert skipped.summary == "nothing: already paid"
    assert Skipped("confirmed already applied by delivery 3", None).summary == (
        "confirmed already applied by delivery 3"
    )


def test_the_status_acted_on_is_the_plans_else_the_callbacks() -> None:
    # Plans saved before the payment status was recorded carry none.
    assert after_plan(plan(payment_status=None), "on-hold", "pending").status == "on-hold"
    assert after_plan(plan(payment_status="failed"), "confirmed", "pending").status == "failed"


def test_a_plan_that_gives_up_is_dead_with_its_reason() -> None:
    held = plan(give_up="the order's payment method is 'bacs'")
    assert after_plan(held, "confirmed", "pending") == Dead("the order's payment method is 'bacs'")


# After a failure ------------------------------------------------------------------------


def failed(
    kind: FailureKind,
    *,
    attempts: int = 1,
    age: float = 0,
    retry_after: float | None = None,
    jitter: float = 1.0,
) -> RetryAt | Dead:
    failure = UpstreamFailure(kind, "WooCommerce answered 503", 503, retry_after)
    return after_failure(
        failure,
        attempts=attempts,
        age_from=NOW - age,
        now=NOW,
        policy=POLICY,
        jitter=lambda: jitter,
    )


@pytest.mark.parametrize("kind", [FailureKind.ORDER_NOT_FOUND, FailureKind.REJECTED])
def test_a_missing_order_or_a_rejected_request_is_dead_at_once(kind: FailureKind) -> None:
    assert failed(kind) == Dead("WooCommerce answered 503")


@pytest.mark.parametrize(
    ("attempts", "jitter", "delay"),
    [(1, 1.0, 5), (2, 1.0, 10), (3, 0.5, 10), (8, 1.0, 600), (40, 1.0, 600), (1, 0.0, 0)],
)
def test_a_transient_failure_retries_with_full_jitter_backoff(
    attempts: int, jitter: float, delay: float
) -> None:
    assert failed(FailureKind.TRANSIENT, attempts=attempts, jitter=jitter) == RetryAt(
        NOW + delay, "WooCommerce answered 503", RetryKind.RETRY, delay, 503
    )


def test_a_retry_after_is_a_floor_and_a_long_one_is_capped_and_said() -> None:
    asked = failed(FailureKind.TRANSIENT, retry_after=120, jitter=0.0)
    assert (asked.at, asked.capped_retry_after) == (NOW + 120, None)
    days = failed(FailureKind.TRANSIENT, retry_after=4 * 86400, jitter=0.0)
    assert (days.at, days.capped_retry_after) == (NOW + 600, 4 * 86400)
    exact = failed(FailureKind.TRANSIENT, retry_after=600, jitter=0.0)
    assert exact.capped_retry_after is None


def test_a_config_error_is_retried_at_the_slowest_pace() -> None:
    assert failed(FailureKind.CONFIG, jitter=0.0) == RetryAt(
        NOW + 600, "WooCommerce answered 503", RetryKind.CONFIG_ERROR, 600, 503
    )


def test_a_retry_past_max_age_is_dead_with_the_last_reason() -> None:
    last_chance = 72 * 3600 - 5  # the next try lands exactly at the deadline: still tried
    assert isinstance(failed(FailureKind.TRANSIENT, age=last_chance), RetryAt)
    assert failed(FailureKind.TRANSIENT, age=last_chance + 0.001) == Dead(
        "gave up after 72 h: WooCommerce answered 503"
    )


# While Cryptum's API lags -------------------------------------------------------------


def awaiting(attempts: int, *, age: float = 0, jitter: float = 1.0) -> RetryAt:
    return awaiting_cryptum(
        "lagging",
        attempts=attempts,
        age_from=NOW - age,
        now=NOW,
        policy=POLICY,
        jitter=lambda: jitter,
    )


def test_a_lagging_api_is_asked_again_with_backoff_at_least_every_reconcile_interval() -> None:
    assert awaiting(1) == RetryAt(NOW + 5, "lagging", RetryKind.AWAITING_CRYPTUM, 5)
    assert awaiting(6).delay == 160
    assert awaiting(7).delay == 300  # 320 by backoff
    assert awaiting(30).delay == 300


def test_the_last_look_at_a_lagging_api_is_at_the_end_of_the_lookback() -> None:
    near_the_end = 48 * 3600 - 100
    assert awaiting(30, age=near_the_end).at == NOW + 100
    assert awaiting(30, age=near_the_end).delay == 100
