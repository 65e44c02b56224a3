"""Retry timing: exponential backoff with full jitter, honouring `Retry-After`."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["retry_delay"]


def retry_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    retry_after: float | None = None,
    random: Callable[[], float],
) -> float:
    """Seconds to wait before attempt `attempt + 1`, having made `attempt` (1 or more).

    Full jitter spreads retries of many deliveries over the whole window,
    so a shop that comes back is not hit by all of them at once. A server's
    `Retry-After` is a floor: retrying earlier would only be refused again.
    The floor is capped at `maximum`, though: a server asking for days would
    otherwise push the retry past the delivery's deadline and dead-letter it
    at once, where retrying at the slowest pace keeps it alive.
    """
    ceiling = min(maximum, initial * 2 ** min(attempt - 1, 62))
    delay: float = random() * ceiling
    if retry_after is not None:
        delay = max(delay, min(retry_after, maximum))
    return delay
