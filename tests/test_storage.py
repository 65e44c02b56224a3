"""The SQLite store on real files: durability settings, schema versions, dedupe, group commit."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.storage import NewEvent, SqliteStorage, StorageError, StorageUnavailable
from bridge.storage.sqlite_migrations import MIGRATIONS, SCHEMA_VERSION


def event(key: str, *, store: str = "main", woo_order_id: str = "1") -> NewEvent:
    return NewEvent(
        store=store,
        body_sha256=hashlib.sha256(key.encode()).digest(),
        source="callback",
        signature_form="json",
        request_id="r",
        cryptum_order_id=f"c-{key}",
        woo_order_id=woo_order_id,
        status="confirmed",
        payload=b"{}",
    )


@pytest.fixture
async def database(tmp_path: Path):  # type: ignore[no-untyped-def]
    opened = await SqliteStorage.open(tmp_path / "db" / "bridge.sqlite3", busy_timeout_ms=100)
    yield opened
    await opened.close()


async def test_file_is_created_private_in_wal_mode(database: SqliteStorage) -> None:
    await database.record_event(event("a"))
    assert stat.S_IMODE(os.stat(database.path).st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{database.path}{suffix}")
        assert stat.S_IMODE(os.stat(companion).st_mode) == 0o600
    with sqlite3.connect(database.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


async def test_writer_commits_with_synchronous_full(database: SqliteStorage) -> None:
    rows = await database._connection.execute_fetchall("PRAGMA synchronous")
    assert list(rows) == [(2,)]  # 2 = FULL


async def test_an_existing_file_with_a_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    opened = await SqliteStorage.open(path)
    await opened.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_identical_events_are_stored_once_with_one_delivery(database: SqliteStorage) -> None:
    first = await database.record_event(event("a"))
    again = await database.record_event(event("a"))
    other_store = await database.record_event(event("a", store="second"))
    assert (first.duplicate, again.duplicate, other_store.duplicate) == (False, True, False)
    assert again.event_id == first.event_id
    with sqlite3.connect(database.path) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone() == (2,)
        assert connection.execute("SELECT count(*) FROM deliveries").fetchone() == (2,)


async def test_duplicates_within_one_batch_are_found(database: SqliteStorage) -> None:
    results = await asyncio.gather(*(database.record_event(event("same")) for _ in range(20)))
    assert sum(not r.duplicate for r in results) == 1
    assert database.commit_stats[0] < 20


async def test_reopening_keeps_events_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    first = await SqliteStorage.open(path)
    stored = await first.record_event(event("kept"))
    await first.close()
    second = await SqliteStorage.open(path)
    try:
        row = await second.get_event(stored.event_id)
        assert row is not None and row.cryptum_order_id == "c-kept"
        assert row.delivery_state == "pending"
    finally:
        await second.close()


async def test_a_version_1_database_is_upgraded_with_its_events_and_deliveries(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bridge.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
        connection.execute(
            "INSERT INTO events (store, body_sha256, received_at, source, cryptum_order_id,"
            " woo_order_id, status, payload) VALUES (?, ?, 1.0, 'callback', 'c-old', '7',"
            " 'confirmed', x'7b7d')",
            ("main", hashlib.sha256(b"old").digest()),
        )
        connection.execute("UPDATE deliveries SET state = 'done', outcome = 'paid'")

    upgraded = await SqliteStorage.open(path)
    try:
        old = await upgraded.get_event(1)
        assert old is not None and old.cryptum_order_id == "c-old"
        assert old.delivery_state == "done"
        # Dedupe, the delivery trigger and the payment lookup work on the new table.
        again = await upgraded.record_event(
            replace(event("old"), cryptum_order_id="c-old", woo_order_id="7")
        )
        assert again.duplicate and again.event_id == 1
        new = await upgraded.record_event(event("new"))
        assert not new.duplicate
        assert (await upgraded.get_event(new.event_id)).delivery_state == "pending"  # type: ignore[union-attr]
        # A delivery done before schema 3 counts as having applied its event's status.
        queue = upgraded
        assert await queue.applied_by("main", "c-old", "confirmed") == 1
        assert await queue.applied_by("main", "c-old", "cancelled") is None
    finally:
        await upgraded.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (references,) = {
            row[2] for row in connection.execute("PRAGMA foreign_key_list(deliveries)")
        }
        assert references == "events"


async def test_admin_opens_do_not_migrate_under_a_running_daemon(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    with pytest.raises(StorageError, match="older than this program's"):
        await SqliteStorage.open(path, create=False)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (1,)


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer than this program"):
        await SqliteStorage.open(path)


async def test_admin_open_does_not_create_a_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database"):
        await SqliteStorage.open(tmp_path / "missing.sqlite3", create=False)
    assert not (tmp_path / "missing.sqlite3").exists()


async def test_a_failed_commit_leaves_nothing_and_the_writer_goes_on(
    database: SqliteStorage,
) -> None:
    blocker = sqlite3.connect(database.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await database.record_event(event("blocked"))
        assert caught.value.reason == "sqlite_busy"
        assert database.last_write_error == "sqlite_busy"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    recorded = await database.record_event(event("blocked"))
    assert recorded.duplicate is False
    assert database.last_write_error is None


async def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    opened = await SqliteStorage.open(tmp_path / "bridge.sqlite3")
    await opened.close()
    with pytest.raises(StorageUnavailable, match="shutting_down"):
        await opened.record_event(event("late"))


async def test_listing_is_newest_first_and_filters_by_store(database: SqliteStorage) -> None:
    for key, store in [("a", "main"), ("b", "second"), ("c", "main")]:
        await database.record_event(event(key, store=store))
    assert [row.cryptum_order_id for row in await database.list_events()] == ["c-c", "c-b", "c-a"]
    assert [row.store for row in await database.list_events(store="second")] == ["second"]
    assert len(await database.list_events(limit=2)) == 2


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
                await opened.record_event(replace(event(f"e{number}"), payload=b"x" * 4000))
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
