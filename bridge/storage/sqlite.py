"""The SQLite store: events, their deliveries, and the one writer that commits them.

All writes go through a `GroupCommitter`, so concurrent callbacks share a
transaction and its fsync. The connection runs in WAL mode with
`synchronous=FULL` and in autocommit mode: each statement is its own
transaction, committed (and fsynced) by the `sqlite3_step` that finishes it,
which reports a failed commit as an error. So when `record_event` returns,
the event survives a crash or power loss.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiosqlite

from ..background import BackgroundLoop
from ..encryption import PayloadCipher
from .errors import StorageError, StorageUnavailable
from .group_commit import GroupCommitter, WriterClosed
from .records import EventRow, NewEvent, Recorded
from .sealing import Sealing
from .sqlite_checkpoint import WRITER_CHECKPOINT_PAGES, WalCheckpointer
from .sqlite_ingest import insert_events
from .sqlite_lock import InstanceLock
from .sqlite_migrations import MIGRATIONS, SCHEMA_VERSION
from .sqlite_queue import SqliteQueue
from .stored import StoredEvent

__all__ = ["SqliteStorage"]

# Batches committing at once. A batch of callbacks is one statement, queued to
# the connection's thread before the batch first waits: the second batch
# waits there, in order, and starts the moment the first one's fsync ends,
# instead of after the event loop has learnt of that end and handed it over.
# Measured under wrk (docs/benchmarks.md): the event loop then waits less for
# commits. A later batch's duplicate lookup reads only what earlier ones wrote.
BATCHES_IN_FLIGHT = 2

# The writer's page cache, in KiB (SQLite's default is about 2 000). Storing
# callbacks touches the end of the tables, which stays cached, and random
# leaves of the unique index, which no cache of a few MiB holds once the
# database is large: on a million stored events a batch insert cost the same
# with 1 MiB as with 2, and the second MiB was part of the daemon's peak
# memory (docs/benchmarks.md).
PAGE_CACHE_KIB = 1024

# Payloads redacted per statement: a run over a large backlog commits as it goes.
_REDACT_BATCH = 500


class _Probe:
    """A write with no data, queued behind real work to prove commits still succeed."""


_PROBE = _Probe()

_EVENT_COLUMNS = """
    e.id, e.store, e.received_at, e.source, e.signature_form, e.request_id,
    e.cryptum_order_id, e.woo_order_id, e.status,
    d.id, d.state, d.attempts, d.last_error
"""


def _describe_sqlite_error(error: sqlite3.Error) -> str:
    code = getattr(error, "sqlite_errorname", None)
    return code.lower() if code else type(error).__name__


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    try:
        # An existing file keeps its mode on open; tighten it anyway, since it
        # holds customers' payment callbacks. SQLite gives -wal/-shm the same mode.
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


class SqliteStorage(SqliteQueue):
    """The SQLite engine: one database file, its single writer, and the queue over it."""

    # The schema this program brings a database to.
    SCHEMA_VERSION = SCHEMA_VERSION

    def __init__(
        self,
        connection: aiosqlite.Connection,
        path: Path,
        *,
        commit_batch_max: int,
        cipher: PayloadCipher | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self._connection = connection
        self._clock = clock
        self.path = path
        self._sealing = Sealing(cipher)
        self._writer: GroupCommitter[StoredEvent | _Probe, Recorded | None] = GroupCommitter(
            self._commit_batch,
            max_batch=commit_batch_max,
            max_in_flight=BATCHES_IN_FLIGHT,
            # The probe's batch makes two writes, which another batch must not come between.
            alone=lambda item: isinstance(item, _Probe),
        )
        self.last_write_error: str | None = None
        self._checkpointer: WalCheckpointer | None = None
        self._instance_lock: InstanceLock | None = None

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        commit_batch_max: int = 256,
        create: bool = True,
        cipher: PayloadCipher | None = None,
        background_checkpoints: bool = False,
        before_migrating: Callable[[int, int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SqliteStorage:
        """Open (creating and migrating if needed) the database at `path`.

        `background_checkpoints` is for the long-running daemon: WAL checkpoints
        then run in a thread of their own instead of after a commit.
        `before_migrating(from_version, to_version)` is told before an existing
        database is migrated, which may take a while when it is large.
        `clock` stamps stored events (their arrival starts every delivery's clock).
        """
        if create:
            try:
                _create_private_file(path)
            except OSError as error:
                raise StorageError(f"cannot create {path}: {error.strerror or error}") from None
        elif not path.exists():
            raise StorageError(f"no database at {path}")
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as error:
            raise StorageError(f"cannot open {path}: {error}") from None
        try:
            await _prepare(
                connection,
                busy_timeout_ms=busy_timeout_ms,
                migrate=create,
                before_migrating=before_migrating,
            )
        except BaseException:
            await connection.close()
            raise
        database = cls(
            connection, path, commit_batch_max=commit_batch_max, cipher=cipher, clock=clock
        )
        if background_checkpoints:
            try:
                database._checkpointer = await WalCheckpointer.open(
                    path, busy_timeout_ms=busy_timeout_ms
                )
                await connection.execute(f"PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}")
            except sqlite3.Error as error:
                await connection.close()
                raise StorageError(f"cannot open {path}: {error}") from None
        database._writer.start()
        return database

    def hold_until_closed(self, lock: InstanceLock) -> None:
        """Keep `serve`'s instance lock on this database until `close`."""
        self._instance_lock = lock

    async def close(self) -> None:
        """Commit what is queued, then close the connections (the last one checkpoints)."""
        try:
            if self._checkpointer is not None:
                await self._checkpointer.close()
            await self._writer.close()
            await self._connection.close()
        finally:
            if self._instance_lock is not None:
                self._instance_lock.release()

    async def schema_version(self) -> int:
        rows = await self._connection.execute_fetchall("PRAGMA user_version")
        return int(next(iter(rows))[0])

    async def count_events(self) -> int:
        rows = await self._connection.execute_fetchall("SELECT count(*) FROM events")
        return int(next(iter(rows))[0])

    async def redact_payloads(
        self, *, received_before: float, now: float, redact: Callable[[bytes], bytes]
    ) -> int:
        """Replace each payload received before `received_before` by `redact(payload)`, once."""
        redacted = 0
        while True:
            rows = list(
                await self._connection.execute_fetchall(
                    "SELECT id, payload, facts FROM events"
                    " WHERE redacted_at IS NULL AND received_at < ?"
                    " ORDER BY received_at LIMIT ?",
                    (received_before, _REDACT_BATCH),
                )
            )
            if not rows:
                return redacted
            await self._connection.executemany(
                "UPDATE events SET payload = ?, facts = ?, redacted_at = ? WHERE id = ?",
                [
                    (
                        self.seal_payload(redact(self.open_payload(payload))),
                        None if facts is None else self._sealing.redacted_facts(facts),
                        now,
                        event_id,
                    )
                    for event_id, payload, facts in rows
                ],
            )
            # A pending delivery may still resume its plan; it is cleared once finished.
            await self._connection.executemany(
                "UPDATE deliveries SET decision = NULL"
                " WHERE event_id = ? AND state != 'pending' AND decision IS NOT NULL",
                [(row[0],) for row in rows],
            )
            redacted += len(rows)

    @property
    def background_loops(self) -> list[BackgroundLoop]:
        """The loops the database runs on its own (WAL checkpoints), for `/readyz`."""
        return [] if self._checkpointer is None else [self._checkpointer.loop]

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(batches, items) committed so far: how well commits are being shared."""
        return self._writer.batches, self._writer.items

    def seal_payload(self, payload: bytes) -> bytes:
        """The payload as stored: encrypted when a key is configured."""
        return self._sealing.seal(payload)

    def open_payload(self, stored: bytes) -> bytes:
        """A stored payload in the clear; raises `PayloadKeyError` if it cannot be opened."""
        return self._sealing.open(stored)

    async def record_event(self, event: NewEvent) -> Recorded:
        """Store `event` and its delivery durably, or find the identical one stored before."""
        stored = StoredEvent(
            event, self.seal_payload(event.payload), self.seal_payload(event.facts.to_json())
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
            # The probe goes first: if the events' statement then fails, no
            # item of the batch was committed and every one of them is told so.
            if len(events) < len(items):
                await self._connection.execute(
                    "INSERT OR REPLACE INTO health_probe (id, checked_at) VALUES (1, ?)",
                    (self._clock(),),
                )
            recorded = iter(await insert_events(self._connection, events, self._clock()))
        except sqlite3.Error as error:
            self.last_write_error = _describe_sqlite_error(error)
            raise StorageUnavailable(self.last_write_error) from None
        if events:
            # Only stored callbacks clear it: a tiny probe row can still fit on
            # a disk too full for a callback.
            self.last_write_error = None
        return [next(recorded) if isinstance(item, StoredEvent) else None for item in items]

    async def list_events(self, *, limit: int = 50, store: str | None = None) -> list[EventRow]:
        """The newest events first."""
        where, parameters = ("WHERE e.store = ?", [store]) if store else ("", [])
        rows = await self._connection.execute_fetchall(
            f"""
            SELECT {_EVENT_COLUMNS}
            FROM events e LEFT JOIN deliveries d ON d.event_id = e.id
            {where} ORDER BY e.id DESC LIMIT ?
            """,
            (*parameters, limit),
        )
        return [EventRow(*row) for row in rows]

    async def get_event(self, event_id: int) -> EventRow | None:
        rows = list(
            await self._connection.execute_fetchall(
                f"""
                SELECT {_EVENT_COLUMNS}, e.payload
                FROM events e LEFT JOIN deliveries d ON d.event_id = e.id
                WHERE e.id = ?
                """,
                (event_id,),
            )
        )
        if not rows:
            return None
        row = EventRow(*rows[0])
        return replace(row, payload=self.open_payload(row.payload or b""))


async def _prepare(
    connection: aiosqlite.Connection,
    *,
    busy_timeout_ms: int,
    migrate: bool,
    before_migrating: Callable[[int, int], None] | None = None,
) -> None:
    """Set the durability pragmas and bring the schema up to date.

    Admin commands open an existing database and do not migrate: one run by
    a newly installed version must not change the schema under the old
    daemon, which runs until it is restarted.
    """
    try:
        journal = await connection.execute_fetchall("PRAGMA journal_mode = WAL")
        if next(iter(journal))[0].lower() != "wal":
            raise StorageError("the database does not support WAL mode")
        await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await connection.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        version = next(iter(await connection.execute_fetchall("PRAGMA user_version")))[0]
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"the database has schema version {version}, newer than this program's "
                f"{SCHEMA_VERSION}; upgrade cryptum-bridge"
            )
        if version < SCHEMA_VERSION and not migrate:
            raise StorageError(
                f"the database has schema version {version}, older than this program's "
                f"{SCHEMA_VERSION}; restart the daemon (systemctl restart cryptum-bridge) "
                "to upgrade it"
            )
        # A new file's schema is made in no time; an existing one may be large.
        if 0 < version < SCHEMA_VERSION and before_migrating is not None:
            before_migrating(version, SCHEMA_VERSION)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            # One script, so the migration and its version number commit together.
            script = (
                f"BEGIN IMMEDIATE; {MIGRATIONS[number - 1]};"
                f" PRAGMA user_version = {number}; COMMIT;"
            )
            try:
                await connection.executescript(script)
            except BaseException:
                if connection.in_transaction:
                    await connection.execute("ROLLBACK")
                raise
        # Only now: a migration may rebuild a table that others refer to.
        await connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as error:
        raise StorageError(f"cannot prepare the database: {error}") from None
