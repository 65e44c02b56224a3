"""Errors that carry their HTTP answer; one middleware turns them into responses."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "HTTPError",
    "InvalidPayloadError",
    "InvalidSignatureError",
    "PayloadTooLargeError",
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


class UnavailableError(HTTPError):
    status = 503
    code = "unavailable"
