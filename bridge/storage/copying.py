"""Copying a whole storage into an empty one of another engine (`migrate-storage`).

Rows are copied as they are stored: their ids, states, plans and
generations, and payloads and facts sealed or not (every engine stores the
same bytes, `sealing.py`), so no key is needed and nothing is decoded. Only
leases are left behind: whoever held one is stopped.

The source is read in one transaction, a snapshot, and its instance lock is
held throughout, so no `serve` starts on it meanwhile. On the target the
schema's migration lock is held from the emptiness check to the end, so a
`serve` started there too early waits for the copy instead of storing
callbacks into it. Rows are inserted plainly, never "or ignore": a row that
collides with one already there fails the copy instead of vanishing.

Today from SQLite into MySQL, the move that has a reason to be made.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
import asyncmy
from asyncmy.errors import MySQLError

from ..config import StorageConfig
from .errors import StorageError, StorageUnavailable
from .mysql_connection import Cursor, MysqlPool, connect_options, describe_error, open_pool
from .opening import open_storage
from .sqlite_lock import InstanceLock

__all__ = ["COPIED_TABLES", "CopyReport", "TableCount", "copy_storage"]


@dataclass(frozen=True, slots=True)
class _Table:
    """A table as it is copied: its columns in both engines, and the column counted up to."""

    name: str
    columns: tuple[str, ...]
    # Read in this order, so a copy cut short holds a prefix of the source.
    order: str
    # Compared between source and target after the copy; the AUTO_INCREMENT
    # counter of a table with an `id` continues after its highest.
    highest: str


_TABLES = (
    _Table(
        "events",
        (
            "id", "store", "body_sha256", "received_at", "source", "signature_form",
            "request_id", "cryptum_order_id", "woo_order_id", "status", "payload", "facts",
            "redacted_at",
        ),
        "id",
        "id",
    ),
    # Without lease_until: a lease belonged to a process that is stopped now.
    _Table(
        "deliveries",
        (
            "id", "event_id", "store", "woo_order_id", "state", "progress", "decision",
            "generation", "attempts", "next_attempt_at", "age_from", "last_error", "outcome",
            "applied_status", "created_at", "updated_at",
        ),
        "id",
        "id",
    ),
    _Table(
        "delivery_runs",
        (
            "id", "delivery_id", "generation", "state", "outcome", "last_error", "attempts",
            "applied_status", "started_at", "finished_at", "requeued_at",
        ),
        "id",
        "id",
    ),
    _Table(
        "applied_payments",
        ("store", "cryptum_order_id", "status", "delivery_id", "applied_at"),
        "store, cryptum_order_id, status",
        "delivery_id",
    ),
)  # fmt: skip
COPIED_TABLES = tuple(table.name for table in _TABLES)
# Every table the MySQL schema has; any other table means the database is another program's.
_MYSQL_TABLES = frozenset({*COPIED_TABLES, "health_probe", "task_leases", "schema_version"})
# Rows read from SQLite at a time, and the most bytes inserted in one MySQL
# transaction: well under the 16 MiB `max_allowed_packet` of MariaDB's default.
_READ_ROWS = 500
_BATCH_BYTES = 4 * 1024 * 1024
# The lock `mysql_schema.migrate` takes before it reads the schema version.
_MIGRATION_LOCK = "concat('cryptum-bridge:migrate:', DATABASE())"

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class TableCount:
    """One table's rows and highest id (or delivery id) in the source and in the copy."""

    table: str
    source_rows: int
    target_rows: int
    source_highest: int | None
    target_highest: int | None

    @property
    def matches(self) -> bool:
        return (self.source_rows, self.source_highest) == (self.target_rows, self.target_highest)


@dataclass(frozen=True, slots=True)
class CopyReport:
    source: str
    target: str
    tables: tuple[TableCount, ...]

    @property
    def matches(self) -> bool:
        return all(table.matches for table in self.tables)


async def copy_storage(
    source: StorageConfig, target: StorageConfig, *, progress: Progress | None = None
) -> CopyReport:
    """Copy every row of `source` into the empty `target`, then count both.

    Raises `StorageError` when the copy cannot start (a running `serve`, a
    target that is not empty) or fails on the way; the source is never
    written to. `progress(table, rows_copied, rows_in_source)` is told after
    each batch.
    """
    if source.engine != "sqlite" or target.engine != "mysql":
        raise StorageError(
            f"cannot copy a {source.engine} storage into {target.engine}: migrate-storage "
            "copies a SQLite database into MySQL"
        )
    path = source.database_path
    if not path.exists():
        raise StorageError(f"no database at {path}")
    lock = InstanceLock(path)
    try:
        lock.acquire()
    except StorageError as error:
        raise StorageError(f"{error}: stop the daemon first") from None
    try:
        # Refuses a schema older than this program's, as admin commands do.
        checked = await open_storage(source, serve=False)
        await checked.close()
        async with _snapshot(path, source.busy_timeout_ms) as reader, _target(target) as pool:
            return await _copy(reader, pool, source.describe(), progress)
    except StorageUnavailable as error:
        # Checking the target, or finishing a copy whose rows are all in.
        raise StorageError(f"{target.describe()}: {_explain(error.reason)}") from None
    finally:
        lock.release()


async def _copy(
    reader: aiosqlite.Connection, pool: MysqlPool, source: str, progress: Progress | None
) -> CopyReport:
    try:
        before = {table.name: await _sqlite_count(reader, table) for table in _TABLES}
    except sqlite3.Error as error:
        raise StorageError(f"reading {source} failed: {error}") from None
    for table in _TABLES:
        try:
            await _copy_table(reader, pool, table, before[table.name][0], progress)
        except sqlite3.Error as error:
            raise StorageError(f"reading {table.name} from {source} failed: {error}") from None
        except StorageUnavailable as error:
            raise StorageError(
                f"copying {table.name} into {pool.describe} failed ({_explain(error.reason)}); "
                "the target holds part of a copy now: empty it (drop its tables) before "
                "trying again"
            ) from None
    await pool.transaction(lambda cursor: _continue_counters(cursor, before))
    counts = []
    for table in _TABLES:
        rows, highest = await pool.read(partial(_mysql_count, table=table))
        source_rows, source_highest = before[table.name]
        counts.append(TableCount(table.name, source_rows, rows, source_highest, highest))
    return CopyReport(source, pool.describe, tuple(counts))


def _explain(reason: str) -> str:
    """The engine's error name, with what it most likely means here."""
    meanings = {
        "mysql_error_1062": "a row collides with one already in the target",
        "mysql_error_1142": "the user lacks a grant docs/scaling.md lists",
        "mysql_error_1406": "a value is longer than its MySQL column allows",
        "mysql_error_1452": "a row refers to one that was not copied",
    }
    return f"{reason}: {meanings[reason]}" if reason in meanings else reason


async def _copy_table(
    reader: aiosqlite.Connection,
    pool: MysqlPool,
    table: _Table,
    total: int,
    progress: Progress | None,
) -> None:
    columns = ", ".join(table.columns)
    placeholders = ", ".join(["%s"] * len(table.columns))
    insert = f"INSERT INTO {table.name} ({columns}) VALUES ({placeholders})"
    copied = 0
    cursor = await reader.execute(f"SELECT {columns} FROM {table.name} ORDER BY {table.order}")
    while rows := list(await cursor.fetchmany(_READ_ROWS)):
        for batch in batches(rows, max_bytes=_BATCH_BYTES):
            await pool.transaction(partial(_insert, statement=insert, rows=batch))
            copied += len(batch)
            if progress is not None:
                progress(table.name, copied, total)
    await cursor.close()


async def _insert(cursor: Cursor, *, statement: str, rows: list[Sequence[Any]]) -> None:
    await cursor.executemany(statement, rows)


def batches(rows: Sequence[Sequence[Any]], *, max_bytes: int) -> Iterator[list[Sequence[Any]]]:
    """`rows` in order, cut where the next row would take a batch past `max_bytes`.

    A row larger than `max_bytes` on its own is a batch of its own.
    """
    batch: list[Sequence[Any]] = []
    size = 0
    for row in rows:
        row_size = sum(len(value) for value in row if isinstance(value, bytes | str))
        if batch and size + row_size > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch


async def _sqlite_count(reader: aiosqlite.Connection, table: _Table) -> tuple[int, int | None]:
    rows = list(
        await reader.execute_fetchall(f"SELECT count(*), max({table.highest}) FROM {table.name}")
    )
    count, highest = rows[0]
    return int(count), None if highest is None else int(highest)


async def _mysql_count(cursor: Cursor, *, table: _Table) -> tuple[int, int | None]:
    await cursor.execute(f"SELECT count(*), max({table.highest}) FROM {table.name}")
    count, highest = await cursor.fetchone()
    return int(count), None if highest is None else int(highest)


async def _continue_counters(cursor: Cursor, before: dict[str, tuple[int, int | None]]) -> None:
    """Make the next id of each table follow the highest copied one.

    InnoDB moves its counter past an id inserted explicitly on its own; this
    says so outright, whatever the server's version keeps across a restart.
    """
    for table in _TABLES:
        highest = before[table.name][1]
        if table.highest == "id" and highest is not None:
            # An integer the database gave: safe to write into the statement.
            await cursor.execute(f"ALTER TABLE {table.name} AUTO_INCREMENT = {int(highest) + 1}")


@asynccontextmanager
async def _snapshot(path: Path, busy_timeout_ms: int) -> AsyncIterator[aiosqlite.Connection]:
    """A connection reading the SQLite database as it is at its first read, until closed."""
    try:
        connection = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as error:
        raise StorageError(f"cannot open {path}: {error}") from None
    try:
        await connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # In WAL mode every read of one transaction sees the same snapshot.
        await connection.execute("BEGIN")
        yield connection
    finally:
        if connection.in_transaction:
            await connection.execute("ROLLBACK")
        await connection.close()


@asynccontextmanager
async def _target(settings: StorageConfig) -> AsyncIterator[MysqlPool]:
    """The target with its schema created, locked against a starting `serve`, and empty."""
    pool = await open_pool(settings)
    try:
        await _refuse_foreign_tables(pool)
        # Creating the schema takes the migration lock itself, so before ours.
        created = await open_storage(settings, serve=True)
        await created.close()
        async with _migration_lock(settings, pool.describe):
            await _refuse_rows(pool)
            yield pool
    finally:
        await pool.close()


async def _refuse_foreign_tables(pool: MysqlPool) -> None:
    async def tables(cursor: Cursor) -> list[str]:
        await cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
        return sorted(str(row[0]) for row in await cursor.fetchall())

    foreign = [name for name in await pool.read(tables) if name not in _MYSQL_TABLES]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise StorageError(
            f"{pool.describe} is not empty: it holds tables of another program ({shown}); "
            "give the bridge a database of its own"
        )


async def _refuse_rows(pool: MysqlPool) -> None:
    held = []
    for table in _TABLES:
        rows, _ = await pool.read(partial(_mysql_count, table=table))
        if rows:
            held.append(f"{rows} {table.name}")
    if held:
        raise StorageError(
            f"{pool.describe} is not empty: it holds {', '.join(held)}; migrate-storage copies "
            "into an empty database only, and has changed nothing"
        )


@asynccontextmanager
async def _migration_lock(settings: StorageConfig, describe: str) -> AsyncIterator[None]:
    """Hold the schema's migration lock on a session of its own (a pooled one may change)."""
    try:
        connection = await asyncmy.connect(**connect_options(settings))
    except (MySQLError, OSError) as error:
        raise StorageError(f"cannot connect to {describe}: {describe_error(error)}") from None
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(f"SELECT GET_LOCK({_MIGRATION_LOCK}, 0)")
            (locked,) = await cursor.fetchone()
            if locked != 1:
                raise StorageError(f"a bridge is starting on {describe}: stop it, then copy")
            yield
            await cursor.execute(f"SELECT RELEASE_LOCK({_MIGRATION_LOCK})")
            await cursor.fetchall()
    finally:
        # Also what releases the lock when the copy failed: it is the session's.
        connection.close()
