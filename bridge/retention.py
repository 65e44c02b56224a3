"""Retention: stored callbacks keep customers' personal data only for `retention_days`.

After that, each payload is cut down to the fields the bridge and an admin
still need (ids, status, transactions) and everything else, known or unknown,
is dropped: Cryptum may add fields, and a field the bridge does not know could
hold a name or an address. Hashes and statuses live in their own columns and
stay. The plan a finished delivery saved goes too: plans saved by earlier
versions carried the callback's free-text message, and a finished delivery
never reads its plan again.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable

import structlog

from .background import BackgroundLoop
from .storage import Storage, StorageUnavailable

__all__ = ["KEPT_FIELDS", "RETENTION_TASK", "RetentionJob", "redact_payload"]

log = structlog.get_logger("bridge.retention")

# Fields of a callback that carry no personal data. `message` is free text, so it goes.
KEPT_FIELDS = ("status", "orderId", "ecommerceOrderId", "storeId", "transactions")
_RUN_EVERY_SECONDS = 6 * 3600
# The name of retention's lease in the storage: one node at a time redacts.
RETENTION_TASK = "retention"


def redact_payload(payload: bytes) -> bytes:
    """The payload with only `KEPT_FIELDS`; a payload that is not a JSON object becomes `{}`."""
    try:
        document = json.loads(payload)
    except ValueError:
        return b"{}"
    if not isinstance(document, dict):
        return b"{}"
    kept = {key: document[key] for key in KEPT_FIELDS if key in document}
    if isinstance(kept.get("transactions"), list):
        kept["transactions"] = [
            {"protocol": t.get("protocol"), "hash": t.get("hash")}
            for t in kept["transactions"]
            if isinstance(t, dict)
        ]
    return json.dumps(kept, separators=(",", ":")).encode()


class RetentionJob:
    """Purges at start and every few hours, until stopped."""

    def __init__(
        self, storage: Storage, *, retention_days: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._storage = storage
        self._retention_seconds = retention_days * 86400
        self._clock = clock
        self.loop = BackgroundLoop("retention", self._step, failed_event="retention.failed")
        self._started = False

    def start(self) -> None:
        self._started = True
        self.loop.start()

    async def stop(self) -> None:
        """Stop at once, even mid-run: every batch is committed on its own, the next run goes on."""
        await self.loop.stop()
        if self._started:
            with contextlib.suppress(StorageUnavailable):
                await self._storage.release_task_lease(RETENTION_TASK)

    async def run_once(self) -> int:
        """Redact what is due, on the node holding retention's lease; how many were."""
        now = self._clock()
        if not await self._storage.hold_task_lease(
            RETENTION_TASK, now=now, seconds=2 * _RUN_EVERY_SECONDS
        ):
            return 0
        count = await self._storage.redact_payloads(
            received_before=now - self._retention_seconds, now=now, redact=redact_payload
        )
        if count:
            log.info("retention.redacted", count=count)
        return count

    async def _step(self) -> float:
        await self.run_once()
        return _RUN_EVERY_SECONDS
