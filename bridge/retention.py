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

import json
import time
from collections.abc import Callable

import structlog

from .background import BackgroundLoop
from .storage import Database

__all__ = ["KEPT_FIELDS", "RetentionJob", "redact_payload"]

log = structlog.get_logger("bridge.retention")

# Fields of a callback that carry no personal data. `message` is free text, so it goes.
KEPT_FIELDS = ("status", "orderId", "ecommerceOrderId", "storeId", "transactions")
_BATCH = 500
_RUN_EVERY_SECONDS = 6 * 3600


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


async def purge_personal_data(database: Database, *, older_than: float, now: float) -> int:
    """Redact every stored payload received before `older_than`; returns how many."""
    connection = database.connection
    redacted = 0
    while True:
        rows = list(
            await connection.execute_fetchall(
                "SELECT id, payload FROM events WHERE redacted_at IS NULL AND received_at < ?"
                " ORDER BY received_at LIMIT ?",
                (older_than, _BATCH),
            )
        )
        if not rows:
            return redacted
        await connection.executemany(
            "UPDATE events SET payload = ?, redacted_at = ? WHERE id = ?",
            [
                (
                    database.seal_payload(redact_payload(database.open_payload(stored))),
                    now,
                    event_id,
                )
                for event_id, stored in rows
            ],
        )
        # A pending delivery may still resume its plan; it is cleared once finished.
        await connection.executemany(
            "UPDATE deliveries SET decision = NULL"
            " WHERE event_id = ? AND state != 'pending' AND decision IS NOT NULL",
            [(event_id,) for event_id, _ in rows],
        )
        redacted += len(rows)


class RetentionJob:
    """Purges at start and every few hours, until stopped."""

    def __init__(
        self, database: Database, *, retention_days: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._database = database
        self._retention_seconds = retention_days * 86400
        self._clock = clock
        self.loop = BackgroundLoop("retention", self._step, failed_event="retention.failed")

    def start(self) -> None:
        self.loop.start()

    async def stop(self) -> None:
        """Stop at once, even mid-run: every batch is committed on its own, the next run goes on."""
        await self.loop.stop()

    async def run_once(self) -> int:
        now = self._clock()
        count = await purge_personal_data(
            self._database, older_than=now - self._retention_seconds, now=now
        )
        if count:
            log.info("retention.redacted", count=count)
        return count

    async def _step(self) -> float:
        await self.run_once()
        return _RUN_EVERY_SECONDS
