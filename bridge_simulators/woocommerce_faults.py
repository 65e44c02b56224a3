"""Faults the simulated WooCommerce can inject, queued in the order a test sets them.

Each fault applies to the next `count` requests to WooCommerce REST routes; a
request takes the fault at the head of the queue. A failed answer's body has
one of these shapes:
- "wordpress" (the default): a WordPress error. The 500 is WordPress's own
  answer to a PHP fatal error, while WordPress has no 429 or 503 of its own
  (those come from hosts, proxies or maintenance mode), so their codes and
  messages are the simulator's;
- "html": the error page of a reverse proxy in front of WordPress (nginx's),
  `text/html`, without WordPress's headers;
- "empty": no body, with PHP's default Content-Type, as PHP answers a fatal
  error raised before any output while it displays no errors;
- "truncated": the "wordpress" error with WordPress's headers, its JSON cut
  halfway, as PHP leaves its output when it dies while writing.
The recordings show none of the last three. Every shape needs a status of 400
to 599 and leaves the shop untouched: a failure never hides an applied change
(a request WordPress ran whose answer never arrived is `drop_response`).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, get_args

from bridge_simulators.fault_bodies import PROXY_PAGE_CONTENT_TYPE, cut_short, proxy_error_page

__all__ = [
    "Fault",
    "FaultAnswer",
    "FaultBody",
    "FaultKind",
    "FaultQueue",
    "fault_answer",
    "fault_body",
]

FaultKind = Literal["fail", "time_out", "reset", "drop_response"]
FaultBody = Literal["wordpress", "html", "empty", "truncated"]

# WordPress's REST answers (every recording).
_JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
# What PHP sends when nothing set a Content-Type (its `default_mimetype` and `default_charset`).
_PHP_DEFAULT_CONTENT_TYPE = "text/html; charset=UTF-8"

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
    body: FaultBody = "wordpress"  # for "fail": the shape of the answer's body

    def __post_init__(self) -> None:
        if self.kind != "fail":
            return
        if self.body not in get_args(FaultBody):
            raise ValueError(f"unknown fault body {self.body!r}")
        if not 400 <= self.status <= 599:
            raise ValueError("a failure needs an HTTP status of 400 to 599")
        if self.body == "html":
            proxy_error_page(self.status)  # raises for a status the proxy has no page for


@dataclass(frozen=True)
class FaultAnswer:
    """The body of a failed answer and the headers that go with it."""

    body: bytes
    content_type: str
    from_wordpress: bool  # WordPress's own headers go with it; a proxy or bare PHP sends none


def fault_body(status: int) -> dict[str, Any]:
    code, message = _FAULT_ERRORS.get(status, ("simulated_error", "Simulated failure."))
    body: dict[str, Any] = {"code": code, "message": message, "data": {"status": status}}
    if status == 500:
        body["additional_errors"] = []
    return body


def fault_answer(status: int, shape: FaultBody) -> FaultAnswer:
    """What a failed answer of this `shape` carries; see the module's docstring."""
    if shape == "html":
        return FaultAnswer(proxy_error_page(status), PROXY_PAGE_CONTENT_TYPE, from_wordpress=False)
    if shape == "empty":
        return FaultAnswer(b"", _PHP_DEFAULT_CONTENT_TYPE, from_wordpress=False)
    error = json.dumps(fault_body(status)).encode()
    if shape == "truncated":
        return FaultAnswer(cut_short(error), _JSON_CONTENT_TYPE, from_wordpress=True)
    return FaultAnswer(error, _JSON_CONTENT_TYPE, from_wordpress=True)


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
