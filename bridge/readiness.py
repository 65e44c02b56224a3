"""What `/readyz` reports: can the bridge keep a callback now, and deliver it?

Storage is probed with a real commit; every background loop (delivery,
reconciliation, retention, checkpoints) reports whether its steps fail.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .background import BackgroundLoop
from .delivery import DeliveryWorker
from .storage import Storage, StorageUnavailable

__all__ = ["Readiness"]


class Readiness:
    """Probes storage with a real commit, at most once per `cache_seconds`.

    The cache keeps a busy prober from turning readiness checks into fsyncs.
    """

    def __init__(
        self,
        storage: Storage,
        worker: DeliveryWorker,
        loops: Sequence[BackgroundLoop],
        *,
        cache_seconds: float = 2.0,
    ) -> None:
        self._storage = storage
        self._worker = worker
        self._loops = loops
        self._cache_seconds = cache_seconds
        self._checked_at = float("-inf")
        self._problems: list[str] = []

    async def problems(self) -> list[str]:
        """Reasons the bridge is not ready; empty when it is."""
        now = time.monotonic()
        if now - self._checked_at >= self._cache_seconds:
            self._problems = await self._check()
            self._checked_at = time.monotonic()
        return list(self._problems)

    async def _check(self) -> list[str]:
        problems = []
        try:
            await self._storage.check_writable()
        except StorageUnavailable as error:
            problems.append(f"storage: {error.reason}")
        else:
            if self._storage.last_write_error is not None:
                # The probe fits, but the last callback did not (e.g. a nearly full disk).
                failed = self._storage.last_write_error
                problems.append(f"storage: the last callback could not be stored ({failed})")
        problems += self._worker.problems()
        return problems + [p for loop in self._loops if (p := loop.problem()) is not None]
