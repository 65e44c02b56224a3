"""The MySQL / MariaDB store: N bridge nodes on one database, with SQLite's guarantees.

Callbacks are written by a `GroupCommitter` as on SQLite: one transaction
(and one redo-log flush) for what arrives while the previous commit runs.
`record_event` returns only after InnoDB's COMMIT has returned, which with
`innodb_flush_log_at_trx_commit = 1` (`doctor` checks it) means the redo
log holding the event is on disk.

Queue operations (`mysql_queue.py`) are each one transaction on a pooled
connection. Periodic work that should run on one node at a time
(reconciliation, retention) asks `hold_task_lease` first.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..background import BackgroundLoop
from ..config import StorageConfig
from ..encryption import PayloadCipher
from .errors import StorageError, StorageUnavailable
from .group_commit import GroupCommitter, WriterClosed
from .mysql_connection import Cursor, MysqlPool, open_pool
from .mysql_ingest import insert_events
from .mysql_queue import MysqlQueue
from .mysql_schema import SCHEMA_VERSION, check_version, migrate, read_version
from .records import EventRow, NewEvent, Recorded
from .sealing import Sealing
from .stored import StoredEvent

__all__ = ["MysqlStorage"]

_REDACT_BATCH = 500

_EVENT_COLUMNS = """
    e.id, e.store, e.received_at, e.source, e.signature_form, e.request_id,
    e.cryptum_order_id, e.woo_order_id, e.status,
    d.id, d.state, d.attempts, d.last_error
"""


class _Probe:
    """A write with no data, queued behind real work to prove commits still succeed."""


_PROBE = _Probe()


def node_name() -> str:
    """This process among the nodes: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class MysqlStorage(MysqlQueue):
    """The MySQL engine: a pool of sessions, one group-commit writer, the shared queue."""

    SCHEMA_VERSION = SCHEMA_VERSION

    def __init__(
        self,
        pool: MysqlPool,
        *,
        commit_batch_max: int,
        cipher: PayloadCipher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._sealing = Sealing(cipher)
        self._clock = clock
        self.node = node_name()
        self._writer: GroupCommitter[StoredEvent | _Probe, Recorded | None] = GroupCommitter(
            self._commit_batch, max_batch=commit_batch_max
        )
        self.last_write_error: str | None = None

    @classmethod
    async def open(
        cls,
        settings: StorageConfig,
        *,
        create: bool = True,
        before_migrating: Callable[[int, int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> MysqlStorage:
        """Connect, and bring the schema up to date (`create`) or check it is (admin commands)."""
        pool = await open_pool(settings)
        try:
            if create:
                await migrate(pool, before_migrating)
            else:
                version = await pool.read(read_version)
                check_version(version, migrate=False)
        except StorageUnavailable as error:
            await pool.close()
            raise StorageError(f"cannot prepare {pool.describe}: {error.reason}") from None
        except BaseException:
            await pool.close()
            raise
        storage = cls(
            pool,
            commit_batch_max=settings.commit_batch_max,
            cipher=settings.cipher(),
            clock=clock,
        )
        storage._writer.start()
        return storage

    async def close(self) -> None:
        """Commit what is queued, then close every connection."""
        await self._writer.close()
        await self._pool.close()

    async def schema_version(self) -> int:
        return await self._pool.read(read_version)

    @property
    def background_loops(self) -> list[BackgroundLoop]:
        return []

    @property
    def commit_stats(self) -> tuple[int, int]:
        return self._writer.batches, self._writer.items

    # Events ---------------------------------------------------------------------------

    async def record_event(self, event: NewEvent) -> Recorded:
        """Store `event` and its delivery durably, or find the identical one stored before."""
        stored = StoredEvent(
            event, self._sealing.seal(event.payload), self._sealing.seal(event.facts.to_json())
        )
        result = await self._submit(stored)
        assert result is not None
        return result

    async def check_writable(self) -> None:
        """Commit a probe row; raises `StorageUnavailable` if commits fail."""
        await self._submit(_PROBE)

    async def _submit(self, item: StoredEvent | _Probe) -> Recorded | None:
        try:
            return await self._writer.submit(item)
        except WriterClosed:
            raise StorageUnavailable("shutting_down") from None

    async def _commit_batch(self, items: list[StoredEvent | _Probe]) -> list[Recorded | None]:
        events = [item for item in items if isinstance(item, StoredEvent)]
        try:
            if len(events) < len(items):
                await self._execute(
                    "INSERT INTO health_probe (id, checked_at) VALUES (1, %s)"
                    " ON DUPLICATE KEY UPDATE checked_at = VALUES(checked_at)",
                    (self._clock(),),
                )
            recorded = iter(await insert_events(self._pool, events, self._clock()))
        except StorageUnavailable as error:
            self.last_write_error = error.reason
            raise
        if events:
            self.last_write_error = None
        return [next(recorded) if isinstance(item, StoredEvent) else None for item in items]

    async def list_events(self, *, limit: int = 50, store: str | None = None) -> list[EventRow]:
        """The newest events first."""
        where, parameters = ("WHERE e.store = %s", [store]) if store else ("", [])
        rows = await self._rows(
            f"""
            SELECT {_EVENT_COLUMNS}
            FROM events e LEFT JOIN deliveries d ON d.event_id = e.id
            {where} ORDER BY e.id DESC LIMIT %s
            """,
            [*parameters, limit],
        )
        return [_event_row(row) for row in rows]

    async def get_event(self, event_id: int) -> EventRow | None:
        rows = await self._rows(
            f"""
            SELECT {_EVENT_COLUMNS}, e.payload
            FROM events e LEFT JOIN deliveries d ON d.event_id = e.id
            WHERE e.id = %s
            """,
            (event_id,),
        )
        if not rows:
            return None
        row = _event_row(rows[0][:-1])
        return replace(row, payload=self._sealing.open(bytes(rows[0][-1])))

    async def count_events(self) -> int:
        return int(await self._scalar("SELECT count(*) FROM events"))

    async def redact_payloads(
        self, *, received_before: float, now: float, redact: Callable[[bytes], bytes]
    ) -> int:
        """Replace each payload received before `received_before` by `redact(payload)`, once.

        Each batch is a transaction of its own. Two nodes redacting the same
        rows at once would each write what the other did: redacting is
        idempotent, and the task lease keeps it to one node anyway.
        """
        redacted = 0
        while True:
            count = await self._pool.transaction(
                lambda cursor: self._redact_batch(cursor, received_before, now, redact)
            )
            if not count:
                return redacted
            redacted += count

    async def _redact_batch(
        self,
        cursor: Cursor,
        received_before: float,
        now: float,
        redact: Callable[[bytes], bytes],
    ) -> int:
        await cursor.execute(
            "SELECT id, payload, facts FROM events"
            " WHERE redacted_at IS NULL AND received_at < %s"
            " ORDER BY received_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (received_before, _REDACT_BATCH),
        )
        rows = list(await cursor.fetchall())
        if not rows:
            return 0
        await cursor.executemany(
            "UPDATE events SET payload = %s, facts = %s, redacted_at = %s WHERE id = %s",
            [
                (
                    self._sealing.seal(redact(self._sealing.open(bytes(payload)))),
                    None if facts is None else self._sealing.redacted_facts(bytes(facts)),
                    now,
                    event_id,
                )
                for event_id, payload, facts in rows
            ],
        )
        chosen = ", ".join(str(int(row[0])) for row in rows)
        # A pending delivery may still resume its plan; it is cleared once finished.
        await cursor.execute(
            "UPDATE deliveries SET decision = NULL"
            f" WHERE event_id IN ({chosen}) AND state != 'pending' AND decision IS NOT NULL"
        )
        return len(rows)

    # One node at a time ---------------------------------------------------------------

    async def hold_task_lease(self, task: str, *, now: float, seconds: float) -> bool:
        """Take or renew this node's lease on `task`; False while another node holds it."""

        async def work(cursor: Cursor) -> bool:
            # The row exists from the first try on, and this statement locks it
            # until the transaction ends: nodes asking at once take turns.
            await cursor.execute(
                "INSERT INTO task_leases (task, holder, held_until) VALUES (%s, %s, %s)"
                " ON DUPLICATE KEY UPDATE task = task",
                (task, self.node, now + seconds),
            )
            await cursor.execute(
                "UPDATE task_leases SET holder = %s, held_until = %s"
                " WHERE task = %s AND (holder = %s OR held_until <= %s)",
                (self.node, now + seconds, task, self.node, now),
            )
            await cursor.execute("SELECT holder FROM task_leases WHERE task = %s", (task,))
            row = await cursor.fetchone()
            return bool(row and row[0] == self.node)

        return await self._pool.transaction(work)

    async def release_task_lease(self, task: str) -> None:
        """Give up `task` at once (a node stopping), so another node takes it at its next try."""
        await self._execute(
            "DELETE FROM task_leases WHERE task = %s AND holder = %s", (task, self.node)
        )


def _event_row(row: tuple[Any, ...]) -> EventRow:
    (event_id, store, received_at, source, signature_form, request_id, cryptum_order_id,
     woo_order_id, status, delivery_id, state, attempts, last_error) = row  # fmt: skip
    return EventRow(
        id=int(event_id),
        store=store,
        received_at=float(received_at),
        source=source,
        signature_form=signature_form,
        request_id=request_id,
        cryptum_order_id=cryptum_order_id,
        woo_order_id=woo_order_id,
        status=status,
        delivery_id=None if delivery_id is None else int(delivery_id),
        delivery_state=state,
        delivery_attempts=None if attempts is None else int(attempts),
        delivery_last_error=last_error,
    )
