"""Errors that carry their HTTP answer; one middleware turns them into responses."""

from __future__ import annotations

import math
from typing import Any, ClassVar

__all__ = [
    "HTTPError",
    "InvalidPayloadError",
    "InvalidSignatureError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RequestTimeoutError",
    "UnavailableError",
    "UnknownStoreError",
]


class HTTPError(Exception):
    """A request that ends with a JSON error answer."""

    status: ClassVar[int]
    code: ClassVar[str]

    def __init__(self, reason: str = "", **details: Any) -> None:
        super().__init__(reason or self.code)
        # Logged, never sent: the answer carries only `code` and `details`.
        self.reason = reason or self.code
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.code, **self.details}

    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the body; none unless a subclass says so."""
        return {}


class InvalidPayloadError(HTTPError):
    status = 400
    code = "invalid_payload"


class InvalidSignatureError(HTTPError):
    status = 401
    code = "invalid_signature"


class UnknownStoreError(HTTPError):
    status = 404
    code = "unknown_store"


class RequestTimeoutError(HTTPError):
    status = 408
    code = "request_timeout"


class PayloadTooLargeError(HTTPError):
    status = 413
    code = "payload_too_large"


class RateLimitedError(HTTPError):
    status = 429
    code = "rate_limited"

    def __init__(self, reason: str = "", *, retry_after_seconds: float) -> None:
        super().__init__(reason)
        # Whole seconds (the header allows nothing finer), rounded up and at
        # least 1: a retry sent any sooner would only be refused again.
        self.retry_after = max(1, math.ceil(retry_after_seconds))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UnavailableError(HTTPError):
    status = 503
    code = "unavailable"
