"""A per-minute cap on the callbacks that no signature vouches for.

A store with `allow_unsigned` stores whatever anyone posts in the right shape,
and each stored callback costs a row, a delivery and a call to Cryptum's API.
A token bucket per store bounds that: `per_minute` callbacks at once, then one
more every `60 / per_minute` seconds. Pure: the clock is passed in, nothing
here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

__all__ = ["Clock", "StoreLimits", "TokenBucket"]

Clock = Callable[[], float]

# Refills are sums of float fractions: a bucket that should hold exactly one
# token may hold 0.9999999999. Far below what any cap could tell apart.
_TOLERANCE = 1e-9


class TokenBucket:
    """Up to `per_minute` tokens, refilled continuously at `per_minute` a minute."""

    def __init__(self, per_minute: int, *, clock: Clock) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._clock = clock
        self._per_minute = per_minute
        self._tokens = float(per_minute)
        self._updated = clock()

    @property
    def per_minute(self) -> int:
        return self._per_minute

    def try_take(self) -> float | None:
        """Take a token and return None, or return the seconds until one will be there."""
        self._refill()
        if self._tokens >= 1 - _TOLERANCE:
            self._tokens = max(0.0, self._tokens - 1)
            return None
        return (1 - self._tokens) * 60 / self._per_minute

    def give_back(self) -> None:
        """Return a token taken for something that turned out not to count."""
        self._refill()
        self._tokens = min(float(self._per_minute), self._tokens + 1)

    def set_per_minute(self, per_minute: int) -> None:
        """Change the cap, keeping what was used: a raised cap frees the difference at once."""
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._refill()
        tokens = self._tokens + per_minute - self._per_minute
        self._tokens = min(float(per_minute), max(0.0, tokens))
        self._per_minute = per_minute

    def _refill(self) -> None:
        now = self._clock()
        # A clock that steps back (it should not: the default is monotonic) refills nothing.
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self._per_minute), self._tokens + elapsed * self._per_minute / 60)
        self._updated = now


class StoreLimits:
    """One bucket per store, made on its first unsigned callback."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, store: str, per_minute: int) -> TokenBucket:
        """The store's bucket; `per_minute` is used only to make one the store has not got yet.

        A changed cap comes through `configure`, never from here: a request
        that began under the previous config must not put the old cap back.
        """
        bucket = self._buckets.get(store)
        if bucket is None:
            bucket = self._buckets[store] = TokenBucket(per_minute, clock=self._clock)
        return bucket

    def configure(self, caps: Mapping[str, int]) -> None:
        """Apply the caps of a new config (store name to cap), keeping each store's use.

        Buckets of stores that are gone are dropped; new stores get theirs
        on their first unsigned callback.
        """
        for store in self._buckets.keys() - caps.keys():
            del self._buckets[store]
        for store, bucket in self._buckets.items():
            if bucket.per_minute != caps[store]:
                bucket.set_per_minute(caps[store])
