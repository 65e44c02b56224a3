"""Faults the simulated WooCommerce can inject, queued in the order a test sets them.

Each fault applies to the next `count` requests to WooCommerce REST routes; a
request takes the fault at the head of the queue. The error bodies are shaped
like WordPress errors; the 500 is WordPress's own answer to a PHP fatal error,
while WordPress has no 429 or 503 of its own (those come from hosts, proxies or
maintenance mode), so their codes and messages are the simulator's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Fault", "FaultKind", "FaultQueue", "fault_body"]

FaultKind = Literal["fail", "time_out", "reset", "drop_response"]

_FAULT_ERRORS = {
    500: (
        "internal_server_error",
        "<p>There has been a critical error on this website.</p>"
        '<p><a href="https://wordpress.org/documentation/article/faq-troubleshooting/">'
        "Learn more about troubleshooting WordPress.</a></p>",
    ),
    503: ("service_unavailable", "The service is temporarily unavailable. Please try again later."),
    429: ("too_many_requests", "Too many requests. Please try again later."),
}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 500  # for "fail"
    retry_after: int | None = None  # for "fail": the Retry-After header, in seconds
    seconds: float = 30.0  # for "time_out": how long the request is held
    method: str | None = None  # only requests with this method take it; None: any


def fault_body(status: int) -> dict[str, Any]:
    code, message = _FAULT_ERRORS.get(status, ("simulated_error", "Simulated failure."))
    body: dict[str, Any] = {"code": code, "message": message, "data": {"status": status}}
    if status == 500:
        body["additional_errors"] = []
    return body


@dataclass
class _Pending:
    fault: Fault
    left: int  # requests it still applies to


class FaultQueue:
    """Faults waiting for requests, first set first used."""

    def __init__(self) -> None:
        self._queue: deque[_Pending] = deque()

    def add(self, fault: Fault, count: int) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self._queue.append(_Pending(fault, count))

    def take(self, method: str) -> Fault | None:
        """The fault for the next request, if any.

        A fault waiting for another method lets this request pass untouched, so
        a test can aim at, say, the PUT that follows a GET.
        """
        if not self._queue:
            return None
        pending = self._queue[0]
        if pending.fault.method not in (None, method):
            return None
        pending.left -= 1
        if pending.left == 0:
            self._queue.popleft()
        return pending.fault

    def __len__(self) -> int:
        return sum(pending.left for pending in self._queue)
