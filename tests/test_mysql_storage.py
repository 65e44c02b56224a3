"""The MySQL engine as several nodes see it: two storages open on one MariaDB database.

Each `node` is a `MysqlStorage` of its own (its own pool, writer and node
name), as two `serve` processes would have; the queue tests that hold on
both engines are in test_delivery_queue.py. The connection layer's settings,
error names and retries are tested last, against a fake pool where a server
cannot show them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from asyncmy.errors import MySQLError, OperationalError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.config import StorageConfig
from bridge.storage import (
    DeliveryState,
    NewEvent,
    StorageError,
    StorageUnavailable,
    mysql,
    mysql_connection,
    open_storage,
)
from bridge.storage.mysql import MysqlStorage
from bridge.storage.mysql_connection import (
    TRANSACTION_ATTEMPTS,
    Cursor,
    MysqlPool,
    connect_options,
    describe_error,
    error_code,
    open_pool,
)
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


async def test_deliveries_of_several_orders_are_requeued_at_once_each_as_a_new_generation(
    open_node: Opener,
) -> None:
    node = await open_node()
    for key, order in (("a", "1"), ("b", "2"), ("c", "3")):
        await node.record_event(event(key, order))
    jobs = await node.claim("main", 3, now=NOW, lease_seconds=60)
    for job in jobs[:2]:
        await node.finish(job.delivery_id, DeliveryState.DONE, "applied", now=NOW + 1)
    assert await node.requeue(state=DeliveryState.DONE, now=NOW + 2) == 2
    assert await node.delivery_counts() == {"pending": 3}
    for job in jobs[:2]:
        (run,) = await node.delivery_runs(job.delivery_id)
        assert (run.state, run.outcome) == ("done", "applied")
    assert await node.delivery_runs(jobs[2].delivery_id) == []


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


async def test_opening_without_options_creates_the_schema_as_the_daemon_does(
    settings: StorageConfig,
) -> None:
    storage = await MysqlStorage.open(settings)
    try:
        assert await storage.schema_version() == SCHEMA_VERSION
    finally:
        await storage.close()


async def test_a_schema_that_cannot_be_prepared_names_the_server_and_the_reason(
    settings: StorageConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def lose(pool: MysqlPool, before_migrating: object) -> None:
        raise StorageUnavailable("mysql_lock_wait_timeout")

    monkeypatch.setattr(mysql, "migrate", lose)
    with pytest.raises(StorageError) as refused:
        await open_storage(settings)
    assert str(refused.value) == (f"cannot prepare {settings.describe()}: mysql_lock_wait_timeout")


def test_each_node_is_named_by_host_process_and_8_random_hex_digits() -> None:
    names = {mysql.node_name() for _ in range(20)}
    assert len(names) == 20
    for name in names:
        host, pid, random_part = name.rsplit(":", 2)
        assert (host, pid) == (socket.gethostname(), str(os.getpid()))
        assert re.fullmatch(r"[0-9a-f]{8}", random_part)


def test_an_event_row_without_a_delivery_has_none_of_its_fields() -> None:
    row = mysql._event_row(
        (5, "main", Decimal("1800000000.25"), "callback", "json", None, "c-5", "9",
         "confirmed", None, None, None, None)
    )  # fmt: skip
    assert (row.id, row.received_at, row.woo_order_id) == (5, 1_800_000_000.25, "9")
    assert (row.delivery_id, row.delivery_state, row.delivery_attempts) == (None, None, None)
    assert row.delivery_last_error is None


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


# The connection layer, without a server: settings, error names, the retry loop.


def tls_settings(tmp_path: Path, *, ca_file: bool) -> StorageConfig:
    options: dict[str, object] = {"url": "mysql://bridge@db.example:3307/bridge", "tls": True}
    if ca_file:
        options["tls_ca_file"] = write_ca(tmp_path / "ca.pem", "Bridge Test CA")
    return StorageConfig.model_validate(options)


def write_ca(path: Path, name: str) -> Path:
    """A self-signed CA certificate in PEM, named `name`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_tls_verifies_the_server_against_the_configured_ca_with_tls_1_2_at_least(
    tmp_path: Path,
) -> None:
    context = connect_options(tls_settings(tmp_path, ca_file=True))["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    names = [dict(entry[0] for entry in ca["subject"]) for ca in context.get_ca_certs()]
    assert names == [{"commonName": "Bridge Test CA"}]


def test_tls_without_a_ca_file_verifies_against_the_systems_cas(tmp_path: Path) -> None:
    context = connect_options(tls_settings(tmp_path, ca_file=False))["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_connections_reach_the_url_as_its_user_in_utf8mb4_without_tls() -> None:
    settings = StorageConfig.model_validate(
        {"url": "mysql://bridge@db.example:3307/payments", "password": "secret"}
    )
    options = connect_options(settings)
    assert {key: options[key] for key in ("host", "port", "user", "password", "db")} == {
        "host": "db.example",
        "port": 3307,
        "user": "bridge",
        "password": "secret",
        "db": "payments",
    }
    assert "unix_socket" not in options
    assert options["charset"] == "utf8mb4"
    assert options["autocommit"] is False
    assert options["ssl"] is None


def test_a_socket_url_connects_through_the_socket_and_no_password_is_an_empty_one() -> None:
    settings = StorageConfig.model_validate(
        {"url": "mysql://bridge@localhost/payments?socket=/run/mysqld/mysqld.sock"}
    )
    options = connect_options(settings)
    assert options["unix_socket"] == "/run/mysqld/mysqld.sock"
    assert "host" not in options
    assert options["password"] == ""


@pytest.mark.parametrize(
    ("error", "code", "name"),
    [
        (OperationalError(1213, "Deadlock found"), 1213, "mysql_deadlock"),
        (OperationalError(1205, "Lock wait timeout exceeded"), 1205, "mysql_lock_wait_timeout"),
        (OperationalError(2013, "Lost connection"), 2013, "mysql_connection_lost"),
        (OperationalError(2003, "Can't connect"), 2003, "mysql_connection_lost"),
        (OperationalError(1054, "Unknown column"), 1054, "mysql_error_1054"),
        (OperationalError("not a code", "text"), None, "OperationalError"),
        (OperationalError(), None, "OperationalError"),
        (ValueError("text"), None, "ValueError"),
    ],
)
def test_errors_are_named_by_their_code_never_their_text(
    error: BaseException, code: int | None, name: str
) -> None:
    assert error_code(error) == code
    assert describe_error(error) == name


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            OperationalError(1045, "Access denied for user 'bridge'@'localhost'"),
            "Access denied for user 'bridge'@'localhost' (1045)",
        ),
        (OperationalError(2003), "OperationalError (2003)"),
        (OperationalError("no code", "a message"), "a message"),
        (OperationalError(), "OperationalError"),
    ],
)
async def test_a_refused_connection_says_the_servers_message_and_code(
    monkeypatch: pytest.MonkeyPatch, error: MySQLError, message: str
) -> None:
    async def refuse(**options: Any) -> Any:
        raise error

    monkeypatch.setattr(mysql_connection.asyncmy, "create_pool", refuse)
    settings = StorageConfig(url="mysql://bridge@db.example/payments")
    with pytest.raises(StorageError) as refused:
        await open_pool(settings)
    assert (
        str(refused.value)
        == f"cannot connect to mysql://bridge@db.example:3306/payments: {message}"
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
        (TimeoutError(), "TimeoutError"),
    ],
)
async def test_a_connection_that_fails_below_the_driver_says_why(
    monkeypatch: pytest.MonkeyPatch, error: OSError, reason: str
) -> None:
    async def fail(**options: Any) -> Any:
        raise error

    monkeypatch.setattr(mysql_connection.asyncmy, "create_pool", fail)
    settings = StorageConfig(url="mysql://bridge@db.example/payments")
    with pytest.raises(StorageError) as failed:
        await open_pool(settings)
    assert (
        str(failed.value) == f"cannot connect to mysql://bridge@db.example:3306/payments: {reason}"
    )


async def test_the_pool_opens_one_session_at_first_up_to_pool_size_recycled_hourly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: dict[str, Any] = {}

    async def create_pool(**options: Any) -> Any:
        asked.update(options)
        return FakePool(FakeConnection())

    monkeypatch.setattr(mysql_connection.asyncmy, "create_pool", create_pool)
    settings = StorageConfig(url="mysql://bridge@db.example/payments", pool_size=7)
    pool = await open_pool(settings)
    # One session at first, so opening proves the server answers; connections
    # are replaced within an hour, well before a server's idle timeout (8 h).
    assert (asked["minsize"], asked["maxsize"], asked["pool_recycle"]) == (1, 7, 3600)
    assert asked["db"] == "payments"
    assert pool.describe == "mysql://bridge@db.example:3306/payments"


class FakeConnection:
    """A driver connection whose commit and rollback can be made to fail or hang."""

    def __init__(self, *, rollback: Callable[[], Awaitable[None]] | None = None) -> None:
        self.commits = 0
        self.rollbacks = 0
        self.closed = False
        self._rollback = rollback

    @contextlib.asynccontextmanager
    async def cursor(self) -> AsyncIterator[object]:
        yield object()

    async def commit(self) -> None:
        self.commits += 1

    async def rollback(self) -> None:
        self.rollbacks += 1
        if self._rollback is not None:
            await self._rollback()

    def close(self) -> None:
        self.closed = True


class FakePool:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        yield self.connection

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the retry loop takes, taken at once."""
    taken: list[float] = []

    async def sleep(seconds: float) -> None:
        taken.append(seconds)

    monkeypatch.setattr(
        mysql_connection, "asyncio", SimpleNamespace(sleep=sleep, wait_for=asyncio.wait_for)
    )
    return taken


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OperationalError(1213, "Deadlock found"), "mysql_deadlock"),
        (OperationalError(1205, "Lock wait timeout exceeded"), "mysql_lock_wait_timeout"),
        (OperationalError(2006, "MySQL server has gone away"), "mysql_connection_lost"),
        (OperationalError(2055, "Lost connection"), "mysql_connection_lost"),
        (ConnectionResetError(104, "Connection reset by peer"), "mysql_connection_lost"),
    ],
)
async def test_a_retried_error_runs_the_transaction_four_times_with_growing_pauses(
    pauses: list[float], monkeypatch: pytest.MonkeyPatch, error: Exception, reason: str
) -> None:
    connection = FakeConnection()
    runs = 0

    async def fail(cursor: Cursor) -> None:
        nonlocal runs
        runs += 1
        raise error

    logs: list[dict[str, object]] = []
    # The module's logger itself: structlog caches it once logging is configured.
    monkeypatch.setattr(
        mysql_connection,
        "log",
        SimpleNamespace(debug=lambda event, **fields: logs.append({"event": event, **fields})),
    )
    with pytest.raises(StorageUnavailable) as failed:
        await MysqlPool(FakePool(connection), describe="db").transaction(fail)
    assert failed.value.reason == reason
    assert runs == TRANSACTION_ATTEMPTS == 4
    assert (connection.rollbacks, connection.commits) == (4, 0)
    assert len(pauses) == 3
    assert pauses[0] < pauses[1] < pauses[2] < 1
    if isinstance(error, MySQLError):
        assert logs == [
            {"event": "storage.retried", "reason": reason, "attempt": n} for n in (1, 2, 3)
        ]


async def test_a_transaction_that_fails_once_commits_on_its_second_run(
    pauses: list[float],
) -> None:
    connection = FakeConnection()
    runs = 0

    async def fail_once(cursor: Cursor) -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ConnectionResetError(104, "Connection reset by peer")
        return "done"

    pool = MysqlPool(FakePool(connection), describe="db")
    assert await pool.transaction(fail_once) == "done"
    assert (runs, connection.rollbacks, connection.commits) == (2, 1, 1)
    assert len(pauses) == 1


async def test_a_connection_that_cannot_roll_back_is_closed(pauses: list[float]) -> None:
    async def refuse() -> None:
        raise OperationalError(2013, "Lost connection")

    connection = FakeConnection(rollback=refuse)

    async def fail(cursor: Cursor) -> None:
        raise OperationalError(1054, "Unknown column")

    with pytest.raises(StorageUnavailable, match=r"^mysql_error_1054$"):
        await MysqlPool(FakePool(connection), describe="db").transaction(fail)
    assert connection.closed


async def test_a_rollback_that_hangs_is_given_up_and_its_connection_closed(
    pauses: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mysql_connection, "CONNECT_TIMEOUT_SECONDS", 0.05)
    connection = FakeConnection(rollback=asyncio.Event().wait)

    async def fail(cursor: Cursor) -> None:
        raise OperationalError(1054, "Unknown column")

    with pytest.raises(StorageUnavailable, match=r"^mysql_error_1054$"):
        await asyncio.wait_for(
            MysqlPool(FakePool(connection), describe="db").transaction(fail), timeout=5
        )
    assert connection.closed
