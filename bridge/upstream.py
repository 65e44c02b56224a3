"""Failures of the services the bridge calls (WooCommerce, Cryptum), as the worker sees them.

Every failed call is one `UpstreamFailure` whose `kind` says what to do:
retry with backoff, give up at once, or report a configuration problem.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["FailureKind", "UpstreamFailure", "connection_failure", "parse_answer"]

Model = TypeVar("Model", bound=BaseModel)


class FailureKind(StrEnum):
    TRANSIENT = "transient"  # retry with backoff
    ORDER_NOT_FOUND = "order_not_found"  # dead-letter at once
    REJECTED = "rejected"  # the request itself is wrong: dead-letter at once
    CONFIG = "config"  # credentials, URL or TLS: loud, retried at the slowest pace


class UpstreamFailure(Exception):
    """A failed call; `reason` is safe to log and, for configuration problems, names the fix."""

    def __init__(
        self,
        kind: FailureKind,
        reason: str,
        status: int | None = None,
        retry_after: float | None = None,
        *,
        service: str = "unknown",
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        # "woocommerce" or "cryptum", set by the client that raised it (metrics label).
        self.service = service


def connection_failure(description: str) -> UpstreamFailure:
    """A request that got no answer (refused, reset, timed out): always worth a retry."""
    return UpstreamFailure(FailureKind.TRANSIENT, description)


def parse_answer(model: type[Model], answer: Any, *, service: str) -> Model:
    """Validate a decoded answer; an unexpected shape is worth a retry, not a crash."""
    try:
        return model.model_validate(answer)
    except ValidationError:
        reason = f"{service} sent an unexpected {model.__name__} shape"
        raise UpstreamFailure(FailureKind.TRANSIENT, reason) from None
