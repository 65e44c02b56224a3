"""The MySQL engine as several nodes see it: two storages open on one MariaDB database.

Each `node` is a `MysqlStorage` of its own (its own pool, writer and node
name), as two `serve` processes would have; the queue tests that hold on
both engines are in test_delivery_queue.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from asyncmy.errors import OperationalError

from bridge.config import StorageConfig
from bridge.storage import NewEvent, StorageError, StorageUnavailable, open_storage
from bridge.storage.mysql import MysqlStorage
from bridge.storage.mysql_connection import TRANSACTION_ATTEMPTS, Cursor
from bridge.storage.mysql_schema import SCHEMA_VERSION

from engines import mariadb_settings
from mariadb import MariaDB

NOW = 1_800_000_000.0


def event(key: str, woo_order_id: str = "1", *, status: str = "confirmed") -> NewEvent:
    return NewEvent(
        store="main",
        body_sha256=hashlib.sha256(key.encode()).digest(),
        source="callback",
        signature_form="json",
        request_id=None,
        cryptum_order_id=f"c-{key}",
        woo_order_id=woo_order_id,
        status=status,
        payload=b'{"key": "%s"}' % key.encode(),
    )


@pytest.fixture
def settings(mariadb: MariaDB) -> StorageConfig:
    return mariadb_settings(mariadb)


Opener = Callable[[], Awaitable[MysqlStorage]]


@pytest.fixture
async def open_node(settings: StorageConfig) -> AsyncIterator[Opener]:
    """Opens another node on the same database; every one is closed at the end."""
    opened: list[MysqlStorage] = []

    async def open_one() -> MysqlStorage:
        storage = await open_storage(settings, clock=lambda: NOW)
        assert isinstance(storage, MysqlStorage)
        opened.append(storage)
        return storage

    yield open_one
    for storage in opened:
        await storage.close()


async def test_nodes_storing_one_callback_at_once_store_one_event_and_share_its_id(
    open_node: Opener,
) -> None:
    first, second = await open_node(), await open_node()
    for round_ in range(20):
        same = event(f"same-{round_}")
        a, b = await asyncio.gather(first.record_event(same), second.record_event(same))
        assert a.event_id == b.event_id
        assert sorted([a.duplicate, b.duplicate]) == [False, True]
    assert await first.count_events() == 20
    assert sum((await first.delivery_counts()).values()) == 20


async def test_many_callbacks_spread_over_nodes_are_each_stored_once(open_node: Opener) -> None:
    nodes = [await open_node() for _ in range(3)]
    keys = [f"k{i}" for i in range(60)]
    # Every callback reaches every node (Cryptum retrying through another one).
    results = await asyncio.gather(
        *[
            node.record_event(event(key, str(i % 7 + 1)))
            for i, key in enumerate(keys)
            for node in nodes
        ]
    )
    by_key: dict[int, list[bool]] = {}
    for recorded in results:
        by_key.setdefault(recorded.event_id, []).append(recorded.duplicate)
    assert len(by_key) == 60
    assert all(sorted(flags) == [False, True, True] for flags in by_key.values())
    assert await nodes[0].count_events() == 60
    assert await nodes[0].delivery_counts() == {"pending": 60}


async def test_nodes_claiming_at_once_never_take_one_delivery_twice(open_node: Opener) -> None:
    nodes = [await open_node() for _ in range(3)]
    # 40 orders, two deliveries each: only the first of each order is claimable.
    for i in range(80):
        await nodes[0].record_event(event(f"e{i}", str(i % 40 + 1)))
    batches = await asyncio.gather(
        *[node.claim("main", 10, now=NOW + 1, lease_seconds=60) for node in nodes for _ in "ab"]
    )
    claimed = [job for batch in batches for job in batch]
    assert len({job.delivery_id for job in claimed}) == len(claimed)
    orders = [job.woo_order_id for job in claimed]
    assert len(set(orders)) == len(orders), "two deliveries of one order at once"
    # Nothing of the first round is left, and the second deliveries wait their turn.
    rest = await nodes[0].claim("main", 100, now=NOW + 1, lease_seconds=60)
    assert len(claimed) + len(rest) == 40
    assert {job.woo_order_id for job in rest}.isdisjoint(orders)


async def test_a_dead_nodes_delivery_waits_for_its_lease_then_resumes_its_plan(
    open_node: Opener,
) -> None:
    dead, alive = await open_node(), await open_node()
    await dead.record_event(event("a"))
    (job,) = await dead.claim("main", 5, now=NOW + 1, lease_seconds=60)
    await dead.save_progress(job.delivery_id, "acting", {"kind": "pay"}, now=NOW + 2)
    await dead.close()  # and never finishes

    assert await alive.release_leases() == 0, "a node frees no lease of another"
    assert await alive.claim("main", 5, now=NOW + 60, lease_seconds=60) == []
    (resumed,) = await alive.claim("main", 5, now=NOW + 61, lease_seconds=60)
    assert resumed.delivery_id == job.delivery_id
    assert (resumed.progress, resumed.decision, resumed.attempts) == (
        "acting",
        {"kind": "pay"},
        2,
    )


async def test_a_finished_delivery_lets_the_next_of_its_order_go_on_any_node(
    open_node: Opener,
) -> None:
    first, second = await open_node(), await open_node()
    await first.record_event(event("a1", "7"))
    await second.record_event(event("a2", "7"))
    (a1,) = await first.claim("main", 5, now=NOW + 1, lease_seconds=60)
    assert await second.claim("main", 5, now=NOW + 1, lease_seconds=60) == []
    await first.finish(a1.delivery_id, "done", "pay", now=NOW + 2, applied_status="confirmed")
    (a2,) = await second.claim("main", 5, now=NOW + 3, lease_seconds=60)
    assert a2.cryptum_order_id == "c-a2"
    assert await second.applied_by("main", "c-a1", "confirmed") == a1.delivery_id


async def test_one_node_at_a_time_holds_a_task_until_its_lease_runs_out(
    open_node: Opener,
) -> None:
    first, second = await open_node(), await open_node()
    assert await first.hold_task_lease("reconcile", now=NOW, seconds=60)
    assert not await second.hold_task_lease("reconcile", now=NOW + 1, seconds=60)
    # The holder renews; the other still waits.
    assert await first.hold_task_lease("reconcile", now=NOW + 50, seconds=60)
    assert not await second.hold_task_lease("reconcile", now=NOW + 100, seconds=60)
    # Another task is another lease.
    assert await second.hold_task_lease("retention", now=NOW + 100, seconds=60)
    # The holder stops renewing: once its lease has run out, the other takes over.
    assert await second.hold_task_lease("reconcile", now=NOW + 110, seconds=60)
    assert not await first.hold_task_lease("reconcile", now=NOW + 111, seconds=60)


async def test_many_nodes_asking_at_once_give_the_task_to_one(open_node: Opener) -> None:
    nodes = [await open_node() for _ in range(5)]
    held = await asyncio.gather(
        *[node.hold_task_lease("reconcile", now=NOW, seconds=60) for node in nodes]
    )
    assert sorted(held) == [False] * 4 + [True]


async def test_a_stopping_node_hands_its_task_over_at_once(open_node: Opener) -> None:
    first, second = await open_node(), await open_node()
    assert await first.hold_task_lease("retention", now=NOW, seconds=3600)
    await second.release_task_lease("retention")  # not the holder: changes nothing
    assert not await second.hold_task_lease("retention", now=NOW + 1, seconds=3600)
    await first.release_task_lease("retention")
    assert await second.hold_task_lease("retention", now=NOW + 2, seconds=3600)


async def test_nodes_starting_together_create_the_schema_once(
    settings: StorageConfig, mariadb: MariaDB
) -> None:
    nodes = await asyncio.gather(*[open_storage(settings) for _ in range(4)])
    try:
        assert {await node.schema_version() for node in nodes} == {SCHEMA_VERSION}
        database = settings.mysql.database
        rows = mariadb.sql(f"SELECT id, version FROM {database}.schema_version").split()
        assert rows == ["1", str(SCHEMA_VERSION)]
    finally:
        for node in nodes:
            await node.close()


async def test_an_admin_command_neither_creates_nor_upgrades_the_schema(
    settings: StorageConfig, mariadb: MariaDB
) -> None:
    with pytest.raises(StorageError) as refused:
        await open_storage(settings, serve=False)
    assert str(refused.value) == (
        f"the database has schema version 0, older than this program's {SCHEMA_VERSION}; "
        "start the daemon (cryptum-bridge serve) to create or upgrade it"
    )
    tables = mariadb.sql(
        "SELECT count(*) FROM information_schema.tables"
        f" WHERE table_schema = '{settings.mysql.database}'"
    )
    assert tables.strip() == "0"


async def test_a_newer_schema_is_refused(settings: StorageConfig, mariadb: MariaDB) -> None:
    node = await open_storage(settings)
    await node.close()
    mariadb.sql(f"UPDATE {settings.mysql.database}.schema_version SET version = 99")
    with pytest.raises(StorageError) as refused:
        await open_storage(settings)
    assert str(refused.value) == (
        f"the database has schema version 99, newer than this program's {SCHEMA_VERSION}; "
        "upgrade cryptum-bridge"
    )


async def test_a_wrong_password_names_the_server_and_user_never_the_password(
    mariadb: MariaDB,
) -> None:
    settings = mariadb_settings(mariadb, password="not-the-password")
    with pytest.raises(StorageError) as refused:
        await open_storage(settings)
    message = str(refused.value)
    assert message.startswith(f"cannot connect to {settings.mysql.display()}: ")
    assert "Access denied for user 'bridge'" in message
    assert "not-the-password" not in message


async def test_a_killed_connection_is_replaced_and_the_operation_goes_through(
    open_node: Opener, mariadb: MariaDB
) -> None:
    node = await open_node()
    await node.record_event(event("before"))
    user_connections = mariadb.sql(
        "SELECT id FROM information_schema.processlist WHERE user = 'bridge'"
    ).split()
    assert user_connections
    for connection in user_connections:
        mariadb.sql(f"KILL {connection}")
    recorded = await node.record_event(event("after"))
    assert not recorded.duplicate
    assert await node.count_events() == 2


async def test_a_deadlock_victim_is_run_again_and_a_lasting_one_is_unavailable(
    open_node: Opener,
) -> None:
    node = await open_node()
    runs = 0

    async def lose_once(cursor: Cursor) -> str:
        nonlocal runs
        runs += 1
        await cursor.execute("SELECT 1")
        if runs == 1:
            raise OperationalError(1213, "Deadlock found when trying to get lock")
        return "committed"

    assert await node._pool.transaction(lose_once) == "committed"
    assert runs == 2

    async def always_lose(cursor: Cursor) -> Any:
        raise OperationalError(1213, "Deadlock found when trying to get lock")

    with pytest.raises(StorageUnavailable, match=r"^mysql_deadlock$"):
        await node._pool.transaction(always_lose)


async def test_an_error_that_running_again_cannot_fix_is_not_retried(open_node: Opener) -> None:
    node = await open_node()
    runs = 0

    async def bad_statement(cursor: Cursor) -> None:
        nonlocal runs
        runs += 1
        await cursor.execute("SELECT no_such_column FROM events")

    with pytest.raises(StorageUnavailable, match=r"^mysql_error_1054$"):
        await node._pool.transaction(bad_statement)
    assert runs == 1 < TRANSACTION_ATTEMPTS


async def test_a_server_gone_away_makes_writes_unavailable_not_hang(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = MariaDB.start(tmp_path_factory.mktemp("mariadb-going-away"))
    try:
        node = await open_storage(mariadb_settings(server))
        await node.record_event(event("stored"))
        server.stop()
        with pytest.raises(StorageUnavailable, match=r"^mysql_connection_lost$"):
            await asyncio.wait_for(node.record_event(event("lost")), timeout=30)
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(node.check_writable(), timeout=30)
        await node.close()
    finally:
        server.stop()
