"""How one attempt at a delivery ends, decided without I/O.

Pure. Every attempt ends in exactly one `Outcome`: the order was changed
(`Applied`), there was nothing to change (`Skipped`), try again later
(`RetryAt`), or give up for an admin to look (`Dead`). The worker records
an outcome in one place (the queue row, the metrics, the log line); this
module decides which one, from the plan that was carried out or from what
went wrong, and when a retry is due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .backoff import retry_delay
from .delivery_plan import Plan
from .upstream import FailureKind, UpstreamFailure

__all__ = [
    "Applied",
    "Dead",
    "Outcome",
    "RetryAt",
    "RetryKind",
    "RetryPolicy",
    "Skipped",
    "after_failure",
    "after_plan",
    "awaiting_cryptum",
]


@dataclass(frozen=True, slots=True)
class Applied:
    """The order was changed or noted as the rules say; `status` is the payment status applied."""

    status: str
    action: str
    target_status: str | None
    reason: str

    @property
    def summary(self) -> str:
        return f"{self.action}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """Nothing to change; `status` is applied all the same, unless another delivery applied it."""

    reason: str
    status: str | None
    order_status: str | None = None
    # The plan's action, when the rules decided there was nothing to do.
    action: str | None = None

    @property
    def summary(self) -> str:
        return self.reason if self.action is None else f"{self.action}: {self.reason}"


class RetryKind(StrEnum):
    RETRY = "retry"  # the shop or the API failed for now
    CONFIG_ERROR = "config_error"  # refused credentials, a wrong URL: retried at the slowest pace
    AWAITING_CRYPTUM = "awaiting_cryptum"  # the API has not caught up with the callback


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Try again at `at`; `error` says why, for the queue row and the log."""

    at: float
    error: str
    kind: RetryKind
    delay: float
    status: int | None = None
    # A Retry-After longer than the longest backoff, which was waited instead.
    capped_retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Dead:
    """Given up on: on the dead-letter list for an admin. `untrusted`: a security event."""

    reason: str
    untrusted: bool = False


Outcome = Applied | Skipped | RetryAt | Dead


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When failed attempts are tried again (`delivery.*` and `reconcile.*` settings)."""

    initial_seconds: float
    max_seconds: float
    max_age_seconds: float
    # A lagging API is asked again at least this often: reconciliation's interval.
    recheck_lag_seconds: float
    # ...and for this long after the callback arrived: reconciliation's lookback.
    lookback_seconds: float


def after_plan(plan: Plan, claimed_status: str, order_status: str) -> Outcome:
    """The outcome of a plan carried out on the live order."""
    if plan.give_up is not None:
        return Dead(plan.give_up)
    # Decided on the live order and carried out: this status is applied,
    # even where the rules found nothing to change.
    applied = plan.payment_status or claimed_status
    if plan.changes is None and plan.note is None:
        return Skipped(plan.reason, applied, order_status, plan.kind)
    return Applied(applied, plan.kind, plan.target_status, plan.reason)


def after_failure(
    failure: UpstreamFailure,
    *,
    attempts: int,
    age_from: float,
    now: float,
    policy: RetryPolicy,
    jitter: Callable[[], float],
) -> RetryAt | Dead:
    """Retry with backoff, at the slowest pace for a config error, or give up."""
    if failure.kind in (FailureKind.ORDER_NOT_FOUND, FailureKind.REJECTED):
        return Dead(failure.reason)
    capped = None
    if failure.kind is FailureKind.CONFIG:
        kind, delay = RetryKind.CONFIG_ERROR, policy.max_seconds
    else:
        kind = RetryKind.RETRY
        delay = retry_delay(
            attempts,
            initial=policy.initial_seconds,
            maximum=policy.max_seconds,
            retry_after=failure.retry_after,
            random=jitter,
        )
        if failure.retry_after is not None and failure.retry_after > policy.max_seconds:
            # A server asking for days must not dead-letter the payment now.
            capped = failure.retry_after
    if now + delay > age_from + policy.max_age_seconds:
        hours = policy.max_age_seconds / 3600
        return Dead(f"gave up after {hours:g} h: {failure.reason}")
    return RetryAt(now + delay, failure.reason, kind, delay, failure.status, capped)


def awaiting_cryptum(
    reason: str,
    *,
    attempts: int,
    age_from: float,
    now: float,
    policy: RetryPolicy,
    jitter: Callable[[], float],
) -> RetryAt:
    """Ask a lagging API again: with backoff, yet at least every reconciliation interval.

    Reconciliation would find the payment once the API settles, but it
    leaves an order with a pending delivery to that delivery, so the
    delivery itself must not wait longer than reconciliation would. The last
    look is at the end of the lookback, when the verdict is final.
    """
    backoff = retry_delay(
        attempts, initial=policy.initial_seconds, maximum=policy.max_seconds, random=jitter
    )
    at = min(now + min(backoff, policy.recheck_lag_seconds), age_from + policy.lookback_seconds)
    return RetryAt(at, reason, RetryKind.AWAITING_CRYPTUM, at - now)
