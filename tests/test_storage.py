"""The storage on both engines (a SQLite file, a MariaDB database): dedupe, group commit, the
probe, failures, reading back, sealing; and SQLite's own files, settings and schema versions."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretBytes

from bridge.config import StorageConfig
from bridge.encryption import PayloadCipher, PayloadKeyError
from bridge.storage import (
    EventFacts,
    EventRow,
    NewEvent,
    Recorded,
    SqliteStorage,
    Storage,
    StorageError,
    StorageUnavailable,
    open_storage,
)
from bridge.storage import sqlite as sqlite_storage
from bridge.storage.mysql_schema import SCHEMA_VERSION as MYSQL_SCHEMA_VERSION
from bridge.storage.sqlite_checkpoint import WRITER_CHECKPOINT_PAGES
from bridge.storage.sqlite_migrations import MIGRATIONS, SCHEMA_VERSION

from engines import sql

NOW = 1_800_000_000.5


def event(
    key: str,
    *,
    store: str = "main",
    woo_order_id: str = "1",
    status: str = "confirmed",
    payload: bytes = b"{}",
) -> NewEvent:
    return NewEvent(
        store=store,
        body_sha256=hashlib.sha256(key.encode()).digest(),
        source="callback",
        signature_form="json",
        request_id="r",
        cryptum_order_id=f"c-{key}",
        woo_order_id=woo_order_id,
        status=status,
        payload=payload,
    )


def query(path: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """What another process reading the file sees."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql, parameters).fetchall()


async def committed(database: Storage, statement: str, *parameters: Any) -> list[tuple[Any, ...]]:
    """What another reader sees (`?` placeholders): on SQLite, another process reading the file."""
    if isinstance(database, SqliteStorage):
        return query(database.path, statement, parameters)
    return await sql(database, statement, *parameters)


async def stored_schema_version(database: Storage) -> int:
    """The version written in the database itself, read below the interface."""
    if isinstance(database, SqliteStorage):
        ((version,),) = query(database.path, "PRAGMA user_version")
    else:
        ((version,),) = await sql(database, "SELECT version FROM schema_version WHERE id = 1")
    return int(version)


def engine_schema_version(database: Storage) -> int:
    return SCHEMA_VERSION if isinstance(database, SqliteStorage) else MYSQL_SCHEMA_VERSION


async def pragma(database: SqliteStorage, name: str) -> Any:
    """A setting of the writer's own connection."""
    rows = await database._connection.execute_fetchall(f"PRAGMA {name}")
    return next(iter(rows))[0]


def version_1_database(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")


def with_key(settings: StorageConfig, key: bytes) -> StorageConfig:
    """The same storage, its payloads sealed with `key`."""
    return settings.model_copy(update={"encryption_key_file": SecretBytes(key)})


@pytest.fixture
def settings(storage_settings: StorageConfig) -> StorageConfig:
    """A new storage on each engine; on SQLite a lock held elsewhere fails a write in 0.1 s."""
    return storage_settings.model_copy(update={"busy_timeout_ms": 100})


@pytest.fixture
async def database(settings: StorageConfig) -> AsyncIterator[Storage]:
    opened = await open_storage(settings, clock=lambda: NOW)
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    """A SQLite file opened as the admin commands do: no background checkpoints."""
    opened = await SqliteStorage.open(
        tmp_path / "db" / "bridge.sqlite3", busy_timeout_ms=100, clock=lambda: NOW
    )
    yield opened
    await opened.close()


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A usual umask, so that a mode the program asks for can be told from the default one."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another connection holding the write lock, as a long admin command would."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


@contextlib.asynccontextmanager
async def writes_refused(database: Storage) -> AsyncIterator[str]:
    """Every commit of an event or a probe fails inside the block; yields the engine's reason."""
    if isinstance(database, SqliteStorage):
        with write_lock(database.path):
            yield "sqlite_busy"
        return
    # The database refuses the rows (as a server out of space would), in this test's own
    # database only: the server is shared by the whole session.
    tables = ("events", "health_probe")
    for table in tables:
        await sql(
            database,
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW"
            " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'",
        )
    try:
        yield "mysql_error_1644"  # an error SIGNALed by a trigger
    finally:
        for table in tables:
            await sql(database, f"DROP TRIGGER refuse_{table}")


def unstorable(database: Storage) -> tuple[NewEvent, str]:
    """An event the engine refuses to store, and the reason it gives."""
    if isinstance(database, SqliteStorage):
        # The sqlite3 module, not SQLite, refuses this value: the error has no
        # SQLite error name, and its class names it instead.
        return event("bad")._replace(payload=object()), "ProgrammingError"  # type: ignore[arg-type]
    # Strict SQL mode: a value too long for its column is an error, never cut short.
    return event("bad")._replace(woo_order_id="9" * 33), "mysql_error_1406"


# Files, modes and pragmas.


async def test_file_is_created_private_in_wal_mode(sqlite_database: SqliteStorage) -> None:
    await sqlite_database.record_event(event("a"))
    assert stat.S_IMODE(os.stat(sqlite_database.path).st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{sqlite_database.path}{suffix}")
        assert stat.S_IMODE(os.stat(companion).st_mode) == 0o600
    assert query(sqlite_database.path, "PRAGMA journal_mode") == [("wal",)]
    assert query(sqlite_database.path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_missing_directories_are_made_and_the_last_is_private(
    tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "var" / "state" / "bridge.sqlite3"
    opened = await SqliteStorage.open(path)
    await opened.close()
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert path.is_file()


async def test_a_new_file_is_private_from_the_moment_it_exists(
    tmp_path: Path, umask_022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whoever opens the file before it is tightened keeps that descriptor, so
    # the mode it is created with matters as much as the one it ends with.
    modes_before_tightening = []
    real_fchmod = os.fchmod

    def observing_fchmod(descriptor: int, mode: int) -> None:
        modes_before_tightening.append(stat.S_IMODE(os.fstat(descriptor).st_mode))
        real_fchmod(descriptor, mode)

    monkeypatch.setattr(os, "fchmod", observing_fchmod)
    opened = await SqliteStorage.open(tmp_path / "bridge.sqlite3")
    await opened.close()
    assert modes_before_tightening == [0o600]


async def test_an_existing_file_with_a_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    opened = await SqliteStorage.open(path)
    await opened.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_a_symlink_in_place_of_the_database_is_refused(tmp_path: Path) -> None:
    # Else whoever can write the directory could point the bridge at any file.
    target = tmp_path / "someone-elses-file"
    target.write_bytes(b"theirs")
    os.chmod(target, 0o644)
    link = tmp_path / "bridge.sqlite3"
    link.symlink_to(target)
    with pytest.raises(StorageError) as caught:
        await SqliteStorage.open(link)
    assert str(caught.value) == f"cannot create {link}: {os.strerror(errno.ELOOP)}"
    assert target.read_bytes() == b"theirs"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


async def test_a_path_sqlite_cannot_open_is_named_in_the_error(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    threads_before = set(threading.enumerate())
    with pytest.raises(StorageError) as caught:
        await SqliteStorage.open(directory, create=False)
    # aiosqlite stops the thread of a failed connection without waiting for
    # it; the thread still hands its answer to this loop, which must be open.
    for thread in set(threading.enumerate()) - threads_before:
        await asyncio.to_thread(thread.join)
    message = str(caught.value)
    assert str(directory) in message
    assert "unable to open database file" in message


async def test_the_writer_runs_with_the_durability_settings(sqlite_database: SqliteStorage) -> None:
    assert await pragma(sqlite_database, "journal_mode") == "wal"
    assert await pragma(sqlite_database, "synchronous") == 2  # FULL
    assert await pragma(sqlite_database, "busy_timeout") == 100
    assert await pragma(sqlite_database, "foreign_keys") == 1
    assert await pragma(sqlite_database, "cache_size") == -1024  # KiB
    # Without background checkpoints the writer keeps SQLite's own threshold.
    assert await pragma(sqlite_database, "wal_autocheckpoint") == 1000


async def test_defaults_wait_five_seconds_for_a_lock_and_checkpoint_inline(
    tmp_path: Path,
) -> None:
    opened = await SqliteStorage.open(tmp_path / "bridge.sqlite3")
    try:
        assert await pragma(opened, "busy_timeout") == 5000
        assert await pragma(opened, "wal_autocheckpoint") == 1000
    finally:
        await opened.close()


async def test_background_checkpoints_raise_the_writers_threshold(tmp_path: Path) -> None:
    opened = await SqliteStorage.open(tmp_path / "bridge.sqlite3", background_checkpoints=True)
    try:
        assert await pragma(opened, "wal_autocheckpoint") == WRITER_CHECKPOINT_PAGES
    finally:
        await opened.close()


async def test_a_database_without_wal_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite takes this name for a database in memory, which has no WAL.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError) as refused:
        await SqliteStorage.open(Path(":memory:"))
    # What `serve` logs as server.storage_failed: the cause, in words.
    assert str(refused.value) == "the database does not support WAL mode"


async def test_a_checkpoint_connection_that_cannot_open_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*_: Any, **__: Any) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite_storage.WalCheckpointer, "open", refused)
    path = tmp_path / "bridge.sqlite3"
    with pytest.raises(StorageError) as failed:
        await SqliteStorage.open(path, background_checkpoints=True)
    assert str(failed.value) == f"cannot open {path}: unable to open database file"


# Schema versions and migrations.


async def test_reopening_keeps_events_and_does_not_migrate_again(settings: StorageConfig) -> None:
    first = await open_storage(settings)
    stored = await first.record_event(event("kept"))
    await first.close()
    migrations: list[tuple[int, ...]] = []
    second = await open_storage(
        settings, before_migrating=lambda *versions: migrations.append(versions)
    )
    try:
        row = await second.get_event(stored.event_id)
        assert row is not None and row.cryptum_order_id == "c-kept"
        assert row.delivery_state == "pending"
    finally:
        await second.close()
    assert migrations == []


async def test_a_new_database_is_not_announced_as_a_migration(settings: StorageConfig) -> None:
    migrations: list[tuple[int, ...]] = []
    opened = await open_storage(
        settings, before_migrating=lambda *versions: migrations.append(versions)
    )
    try:
        assert await stored_schema_version(opened) == engine_schema_version(opened)
    finally:
        await opened.close()
    assert migrations == []


async def test_a_version_1_database_is_upgraded_with_its_events_and_deliveries(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bridge.sqlite3"
    version_1_database(path)
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "INSERT INTO events (store, body_sha256, received_at, source, cryptum_order_id,"
            " woo_order_id, status, payload) VALUES (?, ?, 1.0, 'callback', 'c-old', '7',"
            " 'confirmed', x'7b7d')",
            ("main", hashlib.sha256(b"old").digest()),
        )
        connection.execute("UPDATE deliveries SET state = 'done', outcome = 'paid'")

    migrations: list[tuple[int, ...]] = []
    upgraded = await SqliteStorage.open(
        path, before_migrating=lambda *versions: migrations.append(versions)
    )
    try:
        assert migrations == [(1, SCHEMA_VERSION)]
        old = await upgraded.get_event(1)
        assert old is not None and old.cryptum_order_id == "c-old"
        assert old.delivery_state == "done"
        # Dedupe, the delivery trigger and the payment lookup work on the new table.
        again = await upgraded.record_event(
            event("old")._replace(cryptum_order_id="c-old", woo_order_id="7")
        )
        assert again == Recorded(event_id=1, duplicate=True)
        new = await upgraded.record_event(event("new"))
        assert not new.duplicate
        assert (await upgraded.get_event(new.event_id)).delivery_state == "pending"  # type: ignore[union-attr]
        # A delivery done before schema 3 counts as having applied its event's status.
        queue = upgraded
        assert await queue.applied_by("main", "c-old", "confirmed") == 1
        assert await queue.applied_by("main", "c-old", "cancelled") is None
    finally:
        await upgraded.close()
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(path, "PRAGMA foreign_key_check") == []
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    (references,) = {row[2] for row in query(path, "PRAGMA foreign_key_list(deliveries)")}
    assert references == "events"


async def test_a_failed_migration_is_rolled_back_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    version_1_database(path)
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        # Migration 2 creates this table, so it fails halfway through.
        connection.execute("CREATE TABLE events_rebuilt (id INTEGER PRIMARY KEY)")
    with pytest.raises(StorageError) as caught:
        await SqliteStorage.open(path)
    assert str(caught.value) == "cannot prepare the database: table events_rebuilt already exists"
    assert query(path, "PRAGMA user_version") == [(1,)]
    assert query(path, "SELECT count(*) FROM events") == [(0,)]
    assert query(path, "SELECT count(*) FROM events_rebuilt") == [(0,)]
    # Nothing is left holding the write lock.
    with contextlib.closing(sqlite3.connect(path, timeout=0)) as connection:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")


async def test_admin_opens_do_not_migrate_under_a_running_daemon(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    version_1_database(path)
    migrations: list[tuple[int, ...]] = []
    with pytest.raises(StorageError) as caught:
        await SqliteStorage.open(
            path, create=False, before_migrating=lambda *versions: migrations.append(versions)
        )
    # docs/operations.md quotes this message.
    assert str(caught.value) == (
        f"the database has schema version 1, older than this program's {SCHEMA_VERSION};"
        " restart the daemon (systemctl restart cryptum-bridge) to upgrade it"
    )
    assert migrations == []
    assert query(path, "PRAGMA user_version") == [(1,)]


async def test_admin_opens_use_an_up_to_date_database(settings: StorageConfig) -> None:
    daemon = await open_storage(settings)
    stored = await daemon.record_event(event("a"))
    await daemon.close()
    admin = await open_storage(settings, serve=False)
    try:
        assert [row.id for row in await admin.list_events()] == [stored.event_id]
    finally:
        await admin.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError) as caught:
        await SqliteStorage.open(path)
    assert str(caught.value) == (
        f"the database has schema version {SCHEMA_VERSION + 1}, newer than this program's"
        f" {SCHEMA_VERSION}; upgrade cryptum-bridge"
    )
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


async def test_admin_open_does_not_create_a_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database"):
        await SqliteStorage.open(tmp_path / "missing.sqlite3", create=False)
    assert not (tmp_path / "missing.sqlite3").exists()


# Dedupe.


async def test_identical_events_are_stored_once_with_one_delivery(database: Storage) -> None:
    first = await database.record_event(event("a"))
    again = await database.record_event(event("a"))
    other_store = await database.record_event(event("a", store="second"))
    assert (first, again, other_store) == (
        Recorded(event_id=1, duplicate=False),
        Recorded(event_id=1, duplicate=True),
        Recorded(event_id=2, duplicate=False),
    )
    assert await committed(database, "SELECT count(*) FROM events") == [(2,)]
    assert await committed(database, "SELECT event_id FROM deliveries ORDER BY id") == [
        (1,),
        (2,),
    ]


async def test_the_same_body_with_another_status_is_another_event(database: Storage) -> None:
    confirmed = await database.record_event(event("a"))
    cancelled = await database.record_event(event("a", status="cancelled"))
    again = await database.record_event(event("a", status="cancelled"))
    assert (confirmed, cancelled, again) == (
        Recorded(event_id=1, duplicate=False),
        Recorded(event_id=2, duplicate=False),
        Recorded(event_id=2, duplicate=True),
    )


async def test_identical_events_in_one_batch_are_the_first_ones_duplicates(
    database: Storage,
) -> None:
    results = await asyncio.gather(*(database.record_event(event("same")) for _ in range(3)))
    assert results == [
        Recorded(event_id=1, duplicate=False),
        Recorded(event_id=1, duplicate=True),
        Recorded(event_id=1, duplicate=True),
    ]
    assert database.commit_stats == (1, 3)
    assert await committed(database, "SELECT count(*) FROM deliveries") == [(1,)]


async def test_many_identical_events_share_commits_and_one_event(database: Storage) -> None:
    results = await asyncio.gather(*(database.record_event(event("same")) for _ in range(20)))
    assert sum(not r.duplicate for r in results) == 1
    assert {r.event_id for r in results} == {1}
    assert database.commit_stats[0] < 20


async def test_events_stored_before_are_found_among_new_ones_in_one_batch(
    database: Storage,
) -> None:
    await database.record_event(event("a"))
    await database.record_event(event("b"))
    results = await asyncio.gather(
        database.record_event(event("b")),
        database.record_event(event("c")),
        database.record_event(event("a")),
        database.record_event(event("c")),
        database.record_event(event("b")),
    )
    assert list(results) == [
        Recorded(event_id=2, duplicate=True),
        Recorded(event_id=3, duplicate=False),
        Recorded(event_id=1, duplicate=True),
        Recorded(event_id=3, duplicate=True),
        Recorded(event_id=2, duplicate=True),
    ]
    assert database.commit_stats == (3, 7)


async def test_each_field_of_an_event_is_stored(database: Storage) -> None:
    recorded = await database.record_event(
        NewEvent(
            store="second",
            body_sha256=b"\x01" * 32,
            source="reconcile",
            signature_form=None,
            request_id=None,
            cryptum_order_id="c-9",
            woo_order_id="42",
            status="cancelled",
            payload=b'{"status": "cancelled"}',
        )
    )
    assert await committed(
        database,
        "SELECT store, body_sha256, received_at, source, signature_form, request_id,"
        " cryptum_order_id, woo_order_id, status, payload FROM events WHERE id = ?",
        recorded.event_id,
    ) == [
        (
            "second",
            b"\x01" * 32,
            NOW,
            "reconcile",
            None,
            None,
            "c-9",
            "42",
            "cancelled",
            b'{"status": "cancelled"}',
        )
    ]


# The commit path: group commit, the health probe, failures.


async def test_batches_hold_at_most_256_items_by_default(storage_settings: StorageConfig) -> None:
    opened = await open_storage(storage_settings)
    try:
        await asyncio.gather(*(opened.record_event(event(f"e{n}")) for n in range(257)))
        assert opened.commit_stats == (2, 257)
    finally:
        await opened.close()


async def test_batches_hold_at_most_the_configured_number_of_items(
    storage_settings: StorageConfig,
) -> None:
    opened = await open_storage(storage_settings.model_copy(update={"commit_batch_max": 2}))
    try:
        results = await asyncio.gather(*(opened.record_event(event(f"e{n}")) for n in range(5)))
        assert [r.event_id for r in results] == [1, 2, 3, 4, 5]
        assert opened.commit_stats == (3, 5)
    finally:
        await opened.close()


async def test_batches_of_every_size_give_each_event_its_own_row(database: Storage) -> None:
    # Sizes that fill a statement's places and sizes that leave some unused.
    sizes = (1, 2, 3, 5, 8, 13)
    for size in sizes:
        events = [event(f"s{size}-{n}") for n in range(size)]
        results = await asyncio.gather(*(database.record_event(e) for e in events))
        for stored, result in zip(events, results, strict=True):
            assert not result.duplicate
            row = await committed(
                database, "SELECT cryptum_order_id FROM events WHERE id = ?", result.event_id
            )
            assert row == [(stored.cryptum_order_id,)]
    assert database.commit_stats == (len(sizes), sum(sizes))
    assert await committed(database, "SELECT count(*) FROM deliveries") == [(sum(sizes),)]


async def test_a_batch_with_duplicates_and_unused_places_answers_each_in_order(
    database: Storage,
) -> None:
    first = await database.record_event(event("a"))
    # Four callbacks, three keys: on SQLite the lookup of the keys leaves one place unused.
    results = await asyncio.gather(
        database.record_event(event("a")),
        database.record_event(event("b")),
        database.record_event(event("c")),
        database.record_event(event("b")),
    )
    assert list(results) == [
        Recorded(event_id=first.event_id, duplicate=True),
        Recorded(event_id=first.event_id + 1, duplicate=False),
        Recorded(event_id=first.event_id + 2, duplicate=False),
        Recorded(event_id=first.event_id + 1, duplicate=True),
    ]
    assert await committed(database, "SELECT id, cryptum_order_id FROM events ORDER BY id") == [
        (first.event_id, "c-a"),
        (first.event_id + 1, "c-b"),
        (first.event_id + 2, "c-c"),
    ]


async def test_sqlite_batches_are_written_by_few_statements_whatever_their_sizes(
    sqlite_database: SqliteStorage,
) -> None:
    # SQLite's compiled form of a statement grows with its rows, and a
    # connection keeps many compiled: one statement per batch size held
    # megabytes under a changing load.
    traced: list[str] = []
    await sqlite_database._connection.set_trace_callback(traced.append)
    for size in range(1, 21):
        await asyncio.gather(
            *(sqlite_database.record_event(event(f"s{size}-{n}")) for n in range(size))
        )
    # A statement is traced again for each row its trigger adds: the distinct ones are the batches.
    inserts = {s for s in traced if s.lstrip().startswith("INSERT INTO events")}
    assert len(inserts) == 20
    rows = {statement.split("VALUES", 1)[1].count("), (") + 1 for statement in inserts}
    assert rows == {1, 2, 4, 8, 16, 32}
    assert query(sqlite_database.path, "SELECT count(*) FROM events") == [(210,)]


async def test_the_probe_writes_only_the_health_row(database: Storage) -> None:
    assert database.last_write_error is None
    await database.check_writable()
    assert await committed(database, "SELECT id, checked_at FROM health_probe") == [(1, NOW)]
    assert await committed(database, "SELECT count(*) FROM events") == [(0,)]
    await database.check_writable()
    assert await committed(database, "SELECT count(*) FROM health_probe") == [(1,)]
    assert database.commit_stats == (2, 2)
    assert database.last_write_error is None


async def test_storing_events_writes_no_health_row(database: Storage) -> None:
    await database.record_event(event("a"))
    await asyncio.gather(database.record_event(event("b")), database.record_event(event("c")))
    assert await committed(database, "SELECT count(*) FROM health_probe") == [(0,)]


async def test_a_probe_and_events_share_a_batch_and_each_gets_its_answer(
    database: Storage,
) -> None:
    results = await asyncio.gather(
        database.record_event(event("a")),
        database.check_writable(),
        database.record_event(event("b")),
        database.check_writable(),
    )
    assert list(results) == [
        Recorded(event_id=1, duplicate=False),
        None,
        Recorded(event_id=2, duplicate=False),
        None,
    ]
    assert database.commit_stats == (1, 4)
    assert await committed(database, "SELECT id, checked_at FROM health_probe") == [(1, NOW)]


async def batches_started(database: Storage, count: int) -> None:
    """Wait until `count` batches have been handed to the database."""
    for _ in range(500):
        if database.commit_stats[0] >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{database.commit_stats[0]} batches started, not {count}")


@pytest.fixture
async def patient_sqlite(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    """A SQLite file whose writer waits 10 s for a lock held elsewhere, as for a slow fsync."""
    opened = await SqliteStorage.open(
        tmp_path / "bridge.sqlite3", busy_timeout_ms=10_000, clock=lambda: NOW
    )
    yield opened
    await opened.close()


@contextlib.asynccontextmanager
async def first_batch_waiting(
    database: SqliteStorage, first_event: NewEvent
) -> AsyncIterator[asyncio.Task[Recorded]]:
    """A callback's batch started and held by the write lock another connection holds."""
    with write_lock(database.path):
        first = asyncio.create_task(database.record_event(first_event))
        await batches_started(database, 1)
        yield first


async def test_sqlite_queues_the_next_batch_behind_one_still_committing(
    patient_sqlite: SqliteStorage,
) -> None:
    database = patient_sqlite
    async with first_batch_waiting(database, event("a")) as first:
        again = asyncio.create_task(database.record_event(event("a")))
        other = asyncio.create_task(database.record_event(event("b")))
        await batches_started(database, 2)
        assert not first.done()
    # The second batch ran after the first: it finds the callback the first stored.
    assert await first == Recorded(event_id=1, duplicate=False)
    assert await again == Recorded(event_id=1, duplicate=True)
    assert await other == Recorded(event_id=2, duplicate=False)
    assert database.commit_stats == (2, 3)


async def test_sqlite_commits_a_probe_with_no_other_batch_in_flight(
    patient_sqlite: SqliteStorage,
) -> None:
    """The probe's batch writes twice: a batch queued between the two would break arrival order."""
    database = patient_sqlite
    async with first_batch_waiting(database, event("a")) as first:
        probe = asyncio.create_task(database.check_writable())
        later = asyncio.create_task(database.record_event(event("b")))
        await asyncio.sleep(0.3)
        assert database.commit_stats == (1, 1)  # a place is free, but not for the probe
    assert await first == Recorded(event_id=1, duplicate=False)
    await probe  # raises if the probe's commit failed
    assert await later == Recorded(event_id=2, duplicate=False)
    assert database.commit_stats == (2, 3)


async def test_a_failing_probe_fails_its_whole_batch_before_any_event_is_stored(
    database: Storage,
) -> None:
    await sql(database, "DROP TABLE health_probe")
    results = await asyncio.gather(
        database.record_event(event("a")),
        database.check_writable(),
        database.record_event(event("b")),
        return_exceptions=True,
    )
    # No such table.
    reason = "sqlite_error" if isinstance(database, SqliteStorage) else "mysql_error_1146"
    assert database.commit_stats == (1, 3)
    assert [type(result) for result in results] == [StorageUnavailable] * 3
    assert [result.reason for result in results] == [reason] * 3  # type: ignore[union-attr]
    assert database.last_write_error == reason
    assert await committed(database, "SELECT count(*) FROM events") == [(0,)]


async def test_a_failed_statement_fails_every_event_of_its_batch(database: Storage) -> None:
    refused, reason = unstorable(database)
    results = await asyncio.gather(
        database.record_event(event("good")),
        database.record_event(refused),
        return_exceptions=True,
    )
    assert [type(result) for result in results] == [StorageUnavailable] * 2
    assert [result.reason for result in results] == [reason] * 2  # type: ignore[union-attr]
    assert database.last_write_error == reason
    assert await committed(database, "SELECT count(*) FROM events") == [(0,)]
    # MySQL does not hand out again the ids a failed insert took: the new event is the only one.
    recorded = await database.record_event(event("good"))
    assert not recorded.duplicate
    assert await committed(database, "SELECT id, cryptum_order_id FROM events") == [
        (recorded.event_id, "c-good")
    ]
    assert database.last_write_error is None


async def test_a_failed_commit_leaves_nothing_and_the_writer_goes_on(database: Storage) -> None:
    async with writes_refused(database) as reason:
        with pytest.raises(StorageUnavailable) as caught:
            await database.record_event(event("blocked"))
        assert caught.value.reason == reason
        assert database.last_write_error == reason
    assert await committed(database, "SELECT count(*) FROM events") == [(0,)]
    recorded = await database.record_event(event("blocked"))
    assert recorded == Recorded(event_id=1, duplicate=False)
    assert database.last_write_error is None


async def test_only_a_stored_event_clears_the_last_write_error(database: Storage) -> None:
    async with writes_refused(database) as reason:
        with pytest.raises(StorageUnavailable, match=reason):
            await database.check_writable()
        assert database.last_write_error == reason
    # A probe row can fit where a callback cannot (a nearly full disk).
    await database.check_writable()
    assert database.last_write_error == reason
    await database.record_event(event("a"))
    assert database.last_write_error is None
    # A duplicate is committed too: it proves callbacks are answered again.
    async with writes_refused(database):
        with pytest.raises(StorageUnavailable):
            await database.record_event(event("b"))
    await database.record_event(event("a"))
    assert database.last_write_error is None


async def test_writes_after_close_are_refused(settings: StorageConfig) -> None:
    opened = await open_storage(settings)
    await opened.close()
    # `/readyz` and the callback log show this reason as it is.
    with pytest.raises(StorageUnavailable) as caught:
        await opened.record_event(event("late"))
    assert caught.value.reason == "shutting_down"
    with pytest.raises(StorageUnavailable) as caught:
        await opened.check_writable()
    assert caught.value.reason == "shutting_down"


async def test_events_are_stamped_by_the_given_clock(settings: StorageConfig) -> None:
    opened = await open_storage(settings, clock=lambda: 1234.5)
    try:
        recorded = await opened.record_event(event("a"))
        await opened.check_writable()
        row = await opened.get_event(recorded.event_id)
        assert row is not None and row.received_at == 1234.5
        assert await committed(
            opened, "SELECT next_attempt_at, age_from, created_at FROM deliveries"
        ) == [(1234.5, 1234.5, 1234.5)]
        assert await committed(opened, "SELECT checked_at FROM health_probe") == [(1234.5,)]
    finally:
        await opened.close()


# Reading events back.


async def test_listing_is_newest_first_and_filters_by_store(database: Storage) -> None:
    for key, store in [("a", "main"), ("b", "second"), ("c", "main"), ("d", "second")]:
        await database.record_event(event(key, store=store))
    assert [row.cryptum_order_id for row in await database.list_events()] == [
        "c-d",
        "c-c",
        "c-b",
        "c-a",
    ]
    assert [row.id for row in await database.list_events(store="second")] == [4, 2]
    assert [row.id for row in await database.list_events(store="main")] == [3, 1]
    assert [row.id for row in await database.list_events(limit=2)] == [4, 3]
    assert [row.id for row in await database.list_events(limit=1, store="main")] == [3]
    assert await database.list_events(store="third") == []


async def test_listing_shows_the_newest_50_by_default(database: Storage) -> None:
    await asyncio.gather(*(database.record_event(event(f"e{n}")) for n in range(51)))
    assert [row.id for row in await database.list_events()] == list(range(51, 1, -1))


async def test_listed_rows_carry_their_delivery_but_not_the_payload(database: Storage) -> None:
    await database.record_event(event("a", woo_order_id="7", payload=b'{"a": 1}'))
    (row,) = await database.list_events()
    assert row == EventRow(
        id=1,
        store="main",
        received_at=NOW,
        source="callback",
        signature_form="json",
        request_id="r",
        cryptum_order_id="c-a",
        woo_order_id="7",
        status="confirmed",
        delivery_id=1,
        delivery_state="pending",
        delivery_attempts=0,
        delivery_last_error=None,
        payload=None,
    )


async def test_a_delivery_put_off_after_an_error_is_listed_with_that_error(
    database: Storage,
) -> None:
    stored = await database.record_event(event("a"))
    (job,) = await database.claim("main", 1, now=NOW, lease_seconds=60)
    await database.retry_later(job.delivery_id, at=NOW + 60, error="http_500", now=NOW)
    (listed,) = await database.list_events()
    read = await database.get_event(stored.event_id)
    assert read is not None
    for row in (listed, read):
        assert (row.delivery_id, row.delivery_last_error) == (job.delivery_id, "http_500")


async def test_an_event_is_read_back_with_its_payload(database: Storage) -> None:
    recorded = await database.record_event(event("a", payload=b'{"a": 1}'))
    row = await database.get_event(recorded.event_id)
    assert row is not None
    assert row.payload == b'{"a": 1}'
    assert row.cryptum_order_id == "c-a"
    assert await database.get_event(recorded.event_id + 1) is None


async def test_an_empty_payload_reads_back_empty(database: Storage) -> None:
    recorded = await database.record_event(event("a", payload=b""))
    row = await database.get_event(recorded.event_id)
    assert row is not None and row.payload == b""


async def test_summary_is_the_row_without_its_payload(database: Storage) -> None:
    await database.record_event(event("a", woo_order_id="7", payload=b'{"a": 1}'))
    row = await database.get_event(1)
    assert row is not None
    assert row.summary() == {
        "id": 1,
        "store": "main",
        "received_at": NOW,
        "source": "callback",
        "signature_form": "json",
        "request_id": "r",
        "cryptum_order_id": "c-a",
        "woo_order_id": "7",
        "status": "confirmed",
        "delivery": {"id": 1, "state": "pending", "attempts": 0, "last_error": None},
    }


def test_summary_of_a_row_without_a_delivery() -> None:
    row = EventRow(
        id=5,
        store="main",
        received_at=1.5,
        source="reconcile",
        signature_form=None,
        request_id=None,
        cryptum_order_id="c-5",
        woo_order_id="9",
        status="paid",
        delivery_id=None,
        delivery_state=None,
        delivery_attempts=None,
        delivery_last_error=None,
        payload=b"{}",
    )
    assert row.summary() == {
        "id": 5,
        "store": "main",
        "received_at": 1.5,
        "source": "reconcile",
        "signature_form": None,
        "request_id": None,
        "cryptum_order_id": "c-5",
        "woo_order_id": "9",
        "status": "paid",
        "delivery": None,
    }


def test_summary_of_a_delivery_that_failed() -> None:
    row = EventRow(
        id=5,
        store="main",
        received_at=1.5,
        source="callback",
        signature_form="json",
        request_id="r-5",
        cryptum_order_id="c-5",
        woo_order_id="9",
        status="paid",
        delivery_id=8,
        delivery_state="dead",
        delivery_attempts=3,
        delivery_last_error="http_500",
    )
    assert row.summary()["delivery"] == {
        "id": 8,
        "state": "dead",
        "attempts": 3,
        "last_error": "http_500",
    }


# Encryption at rest.


async def test_payloads_are_sealed_on_disk_and_opened_on_reading(settings: StorageConfig) -> None:
    key = os.urandom(32)
    cipher = PayloadCipher(key)
    opened = await open_storage(with_key(settings, key))
    try:
        recorded = await opened.record_event(event("a", payload=b'{"email": "x@example.com"}'))
        assert recorded == Recorded(event_id=1, duplicate=False)
        # The dedupe key is the body's hash, not the sealed bytes: a resent
        # callback is sealed with a new nonce and still found.
        assert await opened.record_event(event("a", payload=b'{"email": "x@example.com"}')) == (
            Recorded(event_id=1, duplicate=True)
        )
        row = await opened.get_event(1)
        assert row is not None and row.payload == b'{"email": "x@example.com"}'
        ((stored,),) = await committed(opened, "SELECT payload FROM events")
    finally:
        await opened.close()
    assert stored.startswith(b"CBE1")
    assert b"example.com" not in stored
    assert cipher.open(stored) == b'{"email": "x@example.com"}'


async def test_facts_are_sealed_like_the_payload_and_opened_for_the_worker(
    settings: StorageConfig,
) -> None:
    key = os.urandom(32)
    cipher = PayloadCipher(key)
    facts = EventFacts(transactions=(("POLYGON", "0xfeed"),), message="thanks, Ada Lovelace")
    opened = await open_storage(with_key(settings, key))
    try:
        await opened.record_event(event("a")._replace(facts=facts))
        (job,) = await opened.claim("main", 1, now=time.time() + 1, lease_seconds=60)
        assert (job.facts, job.payload) == (facts, None)
        ((stored,),) = await committed(opened, "SELECT facts FROM events")
    finally:
        await opened.close()
    assert stored.startswith(b"CBE1") and b"Lovelace" not in stored
    assert EventFacts.from_json(cipher.open(stored)) == facts


async def test_seal_and_open_with_a_key(tmp_path: Path) -> None:
    cipher = PayloadCipher(os.urandom(32))
    opened = await SqliteStorage.open(tmp_path / "bridge.sqlite3", cipher=cipher)
    try:
        sealed = opened.seal_payload(b"secret")
        assert sealed.startswith(b"CBE1") and b"secret" not in sealed
        assert cipher.open(sealed) == b"secret"
        assert opened.open_payload(sealed) == b"secret"
        # Payloads stored before the key was configured are read as they are.
        assert opened.open_payload(b"plain") == b"plain"
    finally:
        await opened.close()


async def test_seal_and_open_without_a_key(sqlite_database: SqliteStorage) -> None:
    assert sqlite_database.seal_payload(b"plain") == b"plain"
    assert sqlite_database.open_payload(b"plain") == b"plain"
    sealed = PayloadCipher(os.urandom(32)).seal(b"secret")
    with pytest.raises(PayloadKeyError, match=r"no storage\.encryption_key_file"):
        sqlite_database.open_payload(sealed)


async def test_a_payload_stored_before_the_key_was_configured_is_read_as_it_is(
    settings: StorageConfig,
) -> None:
    plain = await open_storage(settings)
    await plain.record_event(event("a", payload=b'{"a": 1}'))
    await plain.close()
    facts = EventFacts(transactions=(("POLYGON", "0xfeed"),), message="thanks")
    sealing = await open_storage(with_key(settings, os.urandom(32)))
    try:
        await sealing.record_event(event("b", woo_order_id="2")._replace(facts=facts))
        row = await sealing.get_event(1)
        assert row is not None and row.payload == b'{"a": 1}'
        jobs = await sealing.claim("main", 5, now=time.time() + 1, lease_seconds=60)
        assert [(job.event_id, job.facts) for job in jobs] == [(1, EventFacts()), (2, facts)]
        ((old,), (new,)) = await committed(sealing, "SELECT payload FROM events ORDER BY id")
    finally:
        await sealing.close()
    assert old == b'{"a": 1}' and new.startswith(b"CBE1")


async def test_a_sealed_payload_without_its_key_is_refused_on_reading(
    settings: StorageConfig,
) -> None:
    sealing = await open_storage(with_key(settings, os.urandom(32)))
    await sealing.record_event(event("a"))
    await sealing.close()
    plain = await open_storage(settings)
    try:
        with pytest.raises(PayloadKeyError, match=r"no storage\.encryption_key_file"):
            await plain.get_event(1)
    finally:
        await plain.close()


async def test_background_checkpoints_copy_commits_into_the_database_file(
    tmp_path: Path,
) -> None:
    """The writer leaves checkpoints to its own thread: the main file grows, the WAL is copied."""

    async def main_file_size_after_commits(background: bool, wait: float) -> int:
        path = tmp_path / f"background-{background}.sqlite3"
        opened = await SqliteStorage.open(path, background_checkpoints=background)
        before = path.stat().st_size
        try:
            for number in range(40):
                await opened.record_event(event(f"e{number}")._replace(payload=b"x" * 4000))
            deadline = asyncio.get_running_loop().time() + wait
            while path.stat().st_size <= before + 120_000:
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.05)
            return path.stat().st_size - before
        finally:
            await opened.close()

    # Without it nothing reaches the main file until the WAL holds SQLite's 1000 pages.
    assert await main_file_size_after_commits(background=False, wait=0.5) == 0
    assert await main_file_size_after_commits(background=True, wait=5) > 120_000


async def test_one_body_for_two_statuses_in_one_batch_is_two_events_each_told_its_own(
    database: Storage,
) -> None:
    # The index is (store, order, status, body): the body alone decides nothing.
    confirmed, cancelled = event("same"), event("same", status="cancelled")
    first, second = await asyncio.gather(
        database.record_event(confirmed), database.record_event(cancelled)
    )
    assert (first.duplicate, second.duplicate) == (False, False)
    stored = dict(await committed(database, "SELECT status, id FROM events"))
    assert (first.event_id, second.event_id) == (stored["confirmed"], stored["cancelled"])
    # Sent again together, each is a duplicate of its own event.
    again = await asyncio.gather(database.record_event(cancelled), database.record_event(confirmed))
    assert [(r.event_id, r.duplicate) for r in again] == [
        (stored["cancelled"], True),
        (stored["confirmed"], True),
    ]


async def test_the_schema_version_and_the_events_are_counted(database: Storage) -> None:
    expected = engine_schema_version(database)
    assert await database.schema_version() == expected == type(database).SCHEMA_VERSION
    assert await database.count_events() == 0
    await database.record_event(event("a"))
    await database.record_event(event("b"))
    await database.record_event(event("a"))  # a duplicate is not another event
    assert await database.count_events() == 2
