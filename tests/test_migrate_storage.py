"""`migrate-storage`: a real SQLite file copied into a database on the throwaway MariaDB.

The source holds every kind of row the bridge writes (callbacks signed and
unsigned, reconciled events, redacted ones, payloads sealed with a key and
plain ones from before it, deliveries in every state, plans saved, leases
held, replayed and retried runs, applied payments); after the copy, every
read the bridge makes answers the same on MySQL as on SQLite.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.config import StorageConfig
from bridge.migrate_storage import TARGET_PASSWORD_VARIABLE, target_settings
from bridge.storage import (
    DeliveryState,
    EventFacts,
    NewEvent,
    Progress,
    Storage,
    StorageError,
    open_storage,
)
from bridge.storage.copying import COPIED_TABLES, CopyReport, TableCount, batches, copy_storage
from bridge.storage.sqlite_lock import InstanceLock

from engines import mariadb_settings
from mariadb import PASSWORD, MariaDB
from support import config_document, to_toml

NOW = 1_800_000_000.0
KEY = bytes(range(32))


def new_event(
    number: int,
    *,
    store: str = "main",
    status: str = "confirmed",
    source: str = "callback",
    signature_form: str | None = "json",
) -> NewEvent:
    return NewEvent(
        store=store,
        body_sha256=hashlib.sha256(f"event-{number}".encode()).digest(),
        source=source,
        signature_form=signature_form,
        request_id=None if source == "reconcile" else f"request-{number}",
        cryptum_order_id=f"cryptum-{number}",
        woo_order_id=str(100 + number),
        status=status,
        payload=b'{"orderId": "cryptum-%d", "email": "someone@example.org"}' % number,
        facts=EventFacts(transactions=(("CELO", f"0x{number:04x}"),), message=f"paid {number}"),
    )


def sqlite_settings(tmp_path: Path, *, key: bool) -> StorageConfig:
    document: dict[str, Any] = {"path": str(tmp_path / "bridge.sqlite3")}
    if key:
        key_file = tmp_path / "payload_key"
        key_file.write_text(base64.b64encode(KEY).decode())
        document["encryption_key_file"] = str(key_file)
    return StorageConfig.model_validate(document)


@dataclass
class Source:
    """What the filled source holds, for the assertions."""

    settings: StorageConfig  # with the payload key
    leased_delivery: int
    acting_delivery: int


async def _finish(storage: Storage, delivery_id: int, state: str, **options: Any) -> None:
    await storage.finish(delivery_id, DeliveryState(state), f"{state}: test", **options)


async def _claim_all(storage: Storage, store: str, now: float) -> dict[str, int]:
    """Claim every due delivery of `store`; their ids by WooCommerce order."""
    jobs = await storage.claim(store, 100, now=now, lease_seconds=60)
    return {job.woo_order_id: job.delivery_id for job in jobs}


async def _fill_before_the_key(settings: StorageConfig) -> None:
    """Plain payloads, finished one way each, then redacted by retention."""
    storage = await open_storage(settings, clock=lambda: NOW)
    try:
        await storage.record_event(new_event(1))
        await storage.record_event(new_event(2, status="pending", signature_form="unsigned"))
        await storage.record_event(new_event(3, status="cancelled", source="reconcile"))
        await storage.record_event(new_event(4, store="second"))
        ids = await _claim_all(storage, "main", NOW + 1)
        await _finish(storage, ids["101"], "done", now=NOW + 2, applied_status="confirmed")
        await _finish(storage, ids["102"], "skipped", now=NOW + 2)
        await _finish(storage, ids["103"], "dead", now=NOW + 2)
        redacted = await storage.redact_payloads(
            received_before=NOW + 1, now=NOW + 3, redact=lambda payload: b'{"redacted": true}'
        )
        assert redacted == 4
    finally:
        await storage.close()


async def _fill_with_the_key(settings: StorageConfig) -> Source:
    """Sealed payloads: a plan saved, a lease held, a replay and a retry with their runs."""
    later = NOW + 100
    storage = await open_storage(settings, clock=lambda: later)
    try:
        events = {n: (await storage.record_event(new_event(n))).event_id for n in (5, 6, 7, 8)}
        ids = await _claim_all(storage, "main", later + 1)
        plan = {"put": {"status": "processing"}, "note": "paid"}
        await storage.save_progress(ids["105"], Progress.ACTING, plan, now=later + 2)
        await storage.retry_later(ids["105"], at=later + 30, error="timeout", now=later + 2)
        await _finish(storage, ids["107"], "done", now=later + 2, applied_status="confirmed")
        await _finish(storage, ids["108"], "dead", now=later + 2)
        # One replayed and finished again, one retried and claimed again: two earlier runs.
        assert await storage.requeue_event(events[7], now=later + 3) == 1
        assert await storage.requeue(
            state=DeliveryState.DEAD, delivery_id=ids["108"], now=later + 3
        )
        again = await _claim_all(storage, "main", later + 4)
        assert sorted(again) == ["107", "108"]
        await _finish(storage, again["107"], "skipped", now=later + 5)
        # 106 and 108 keep their leases: claimed and never finished.
        return Source(settings, leased_delivery=ids["106"], acting_delivery=ids["105"])
    finally:
        await storage.close()


async def fill_source(tmp_path: Path) -> Source:
    await _fill_before_the_key(sqlite_settings(tmp_path, key=False))
    return await _fill_with_the_key(sqlite_settings(tmp_path, key=True))


async def everything_read(storage: Storage) -> dict[str, Any]:
    """Every answer the bridge's reads give, over the whole storage."""
    events = await storage.list_events(limit=1000)
    deliveries = await storage.list_deliveries(limit=1000)
    payments = {(e.store, e.cryptum_order_id, s) for e in events for s in (e.status, "confirmed")}
    return {
        "events": events,
        "events of second": await storage.list_events(store="second"),
        "each event": [await storage.get_event(event.id) for event in events],
        "deliveries": deliveries,
        "dead": await storage.list_deliveries(state="dead"),
        "each delivery": [await storage.get_delivery(row.id) for row in deliveries],
        "runs": [await storage.delivery_runs(row.id) for row in deliveries],
        "finished runs": await storage.finished_runs(),
        "counts": await storage.delivery_counts(),
        "event count": await storage.count_events(),
        "oldest pending": await storage.oldest_pending(),
        "next due": await storage.next_due(),
        "applied by": {p: await storage.applied_by(*p) for p in sorted(payments)},
        "known": {p: await storage.knows_payment(*p) for p in sorted(payments)},
    }


async def read_all(settings: StorageConfig) -> dict[str, Any]:
    storage = await open_storage(settings, serve=False)
    try:
        return await everything_read(storage)
    finally:
        await storage.close()


@pytest.fixture
def target(mariadb: MariaDB) -> StorageConfig:
    """An empty database of its own on the throwaway MariaDB (no payload key: see `with_key`)."""
    return mariadb_settings(mariadb)


def with_key(target: StorageConfig, source: Source) -> StorageConfig:
    return target.model_copy(update={"encryption_key_file": source.settings.encryption_key_file})


async def test_every_read_answers_the_same_after_the_copy(
    tmp_path: Path, target: StorageConfig
) -> None:
    source = await fill_source(tmp_path)
    before = await read_all(source.settings)

    report = await copy_storage(source.settings, target)

    assert report.matches
    assert [table.table for table in report.tables] == list(COPIED_TABLES)
    rows = {table.table: table.source_rows for table in report.tables}
    assert rows == {"events": 8, "deliveries": 8, "delivery_runs": 2, "applied_payments": 2}
    after = await read_all(with_key(target, source))
    assert after == before
    # The source held what this test is about: two copies of nothing compare equal too.
    assert len(before["events"]) == 8 and before["counts"] == {
        "pending": 4,
        "done": 1,
        "skipped": 2,
        "dead": 1,
    }
    assert before["each event"][0].payload.startswith(b'{"orderId": "cryptum-8"')
    assert any(run for run in before["runs"])
    assert await read_all(source.settings) == before, "the source is unchanged"


async def test_rows_are_copied_byte_for_byte_sealed_payloads_included(
    tmp_path: Path, target: StorageConfig, mariadb: MariaDB
) -> None:
    source = await fill_source(tmp_path)
    await copy_storage(source.settings, target)
    query = "SELECT id, hex(body_sha256), hex(payload), hex(facts), redacted_at FROM events"
    with sqlite3.connect(source.settings.database_path) as connection:
        expected = [
            "\t".join(_as_mariadb_prints(value) for value in row)
            for row in connection.execute(f"{query} ORDER BY id")
        ]
    copied = mariadb.sql(f"USE {target.mysql.database}; {query} ORDER BY id").splitlines()
    assert copied == expected
    # Sealed with the key: without it, the copy opens no more than the source did.
    sealed = [line for line in copied if line.split("\t")[2].startswith(b"CBE1".hex().upper())]
    assert len(sealed) == 4


def _as_mariadb_prints(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


async def test_the_copy_is_served_on_mysql_where_the_source_left_off(
    tmp_path: Path, target: StorageConfig
) -> None:
    source = await fill_source(tmp_path)
    report = await copy_storage(source.settings, target)
    storage = await open_storage(with_key(target, source), clock=lambda: NOW + 200)
    try:
        # The leases of the stopped daemon are gone; the saved plan is there to resume.
        jobs = {job.delivery_id: job for job in await _claim_jobs(storage, NOW + 200)}
        assert {source.leased_delivery, source.acting_delivery} <= set(jobs)
        acting = jobs[source.acting_delivery]
        assert (acting.progress, acting.decision) == (
            Progress.ACTING,
            {"put": {"status": "processing"}, "note": "paid"},
        )
        assert acting.facts == new_event(5).facts  # opened with the key
        # A new callback continues the ids after the copied ones.
        recorded = await storage.record_event(new_event(9))
        row = await storage.get_event(recorded.event_id)
    finally:
        await storage.close()
    highest = {table.table: table.target_highest for table in report.tables}
    assert row is not None and row.delivery_id is not None
    assert recorded.event_id == highest["events"] + 1  # type: ignore[operator]
    assert row.delivery_id == highest["deliveries"] + 1  # type: ignore[operator]


async def _claim_jobs(storage: Storage, now: float) -> list[Any]:
    return list(await storage.claim("main", 100, now=now, lease_seconds=60))


async def test_a_target_with_events_is_refused_and_left_as_it_was(
    tmp_path: Path, target: StorageConfig
) -> None:
    source = await fill_source(tmp_path)
    storage = await open_storage(target, clock=lambda: NOW)
    await storage.record_event(new_event(1))
    await storage.close()
    before = await read_all(target)

    with pytest.raises(StorageError, match="is not empty: it holds 1 events, 1 deliveries;"):
        await copy_storage(source.settings, target)
    assert await read_all(target) == before


async def test_a_database_of_another_program_is_refused_before_anything_is_created(
    tmp_path: Path, target: StorageConfig, mariadb: MariaDB
) -> None:
    source = await fill_source(tmp_path)
    database = target.mysql.database
    mariadb.sql(f"CREATE TABLE {database}.wp_posts (id INT PRIMARY KEY)")
    with pytest.raises(StorageError, match=r"tables of another program \(wp_posts\)"):
        await copy_storage(source.settings, target)
    tables = mariadb.sql(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{database}'"
    )
    assert tables.split() == ["wp_posts"]


async def test_a_database_a_serve_holds_is_refused(tmp_path: Path, target: StorageConfig) -> None:
    source = await fill_source(tmp_path)
    serving = InstanceLock(source.settings.database_path)
    serving.acquire()
    try:
        with pytest.raises(StorageError, match="another cryptum-bridge serve is using this"):
            await copy_storage(source.settings, target)
    finally:
        serving.release()
    assert (await copy_storage(source.settings, target)).matches  # once it has stopped


async def test_only_sqlite_into_mysql_is_copied(tmp_path: Path, target: StorageConfig) -> None:
    with pytest.raises(StorageError, match="cannot copy a mysql storage into mysql"):
        await copy_storage(target, target)
    with pytest.raises(StorageError, match="no database at"):
        await copy_storage(StorageConfig(path=tmp_path / "none.sqlite3"), target)


async def test_a_row_mysql_cannot_hold_stops_the_copy_saying_what_to_do(
    tmp_path: Path, target: StorageConfig
) -> None:
    settings = sqlite_settings(tmp_path, key=False)
    storage = await open_storage(settings, clock=lambda: NOW)
    await storage.record_event(new_event(1))
    # SQLite keeps any length; MySQL's column holds 32 characters.
    await storage.record_event(new_event(2)._replace(woo_order_id="9" * 40))
    await storage.close()
    with pytest.raises(StorageError) as stopped:
        await copy_storage(settings, target)
    assert str(stopped.value) == (
        f"copying events into {target.url} failed (mysql_error_1406: a value is longer than "
        "its MySQL column allows); the target holds part of a copy now: empty it (drop its "
        "tables) before trying again"
    )
    assert (await read_all(settings))["event count"] == 2
    released = InstanceLock(settings.database_path)
    released.acquire()  # the copy gave its lock back
    released.release()


def test_batches_cut_by_size_and_keep_the_order() -> None:
    rows = [(1, b"x" * 40), (2, "y" * 40), (3, None), (4, b"z" * 100), (5, b"")]
    assert [[row[0] for row in batch] for batch in batches(rows, max_bytes=80)] == [
        [1, 2, 3],
        [4],
        [5],
    ]
    assert list(batches([], max_bytes=80)) == []


# The command


def run(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_source_config(tmp_path: Path, source: Source) -> Path:
    """A config whose [storage] names the SQLite source, with its payload key."""
    storage = {
        "path": str(source.settings.database_path),
        "encryption_key_file": str(tmp_path / "payload_key"),
    }
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config_document(source.settings.database_path, storage=storage)))
    return path


def password_file(tmp_path: Path, password: str = PASSWORD) -> Path:
    path = tmp_path / "target_password"
    path.write_text(password + "\n")
    return path


async def test_the_command_copies_verifies_and_says_what_next(
    tmp_path: Path, target: StorageConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    source = await fill_source(tmp_path)
    config = write_source_config(tmp_path, source)
    code, out, err = await asyncio.to_thread(
        run,
        capsys,
        "migrate-storage",
        "--config",
        str(config),
        "--to",
        str(target.url),
        "--password-file",
        str(password_file(tmp_path)),
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"copying {source.settings.database_path} into {target.url}"
    assert "  events: 8 of 8 rows copied" in lines
    table = out[out.index("TABLE") :].splitlines()
    assert table[0].split()[:3] == ["TABLE", "SOURCE", "ROWS"]
    assert table[1].split() == ["events", "8", "8", "8", "/", "8", "ok"]
    assert table[4].split() == ["applied_payments", "2", "2", "7", "/", "7", "ok"]
    assert "Every table was copied whole: the row counts and highest ids match." in out
    assert f'replace path with url = "{target.url}"' in out
    assert PASSWORD not in out + err
    assert await read_all(with_key(target, source)) == await read_all(source.settings)


async def test_the_password_may_come_from_the_environment_and_no_key_is_needed(
    tmp_path: Path,
    target: StorageConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = await fill_source(tmp_path)
    monkeypatch.setenv(TARGET_PASSWORD_VARIABLE, PASSWORD)
    database = str(source.settings.database_path)
    code, _, err = await asyncio.to_thread(
        run, capsys, "migrate-storage", "--database", database, "--to", str(target.url)
    )
    assert (code, err) == (0, "")
    assert await read_all(with_key(target, source)) == await read_all(source.settings)


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("sqlite:///tmp/x", 'migrate-storage --to: must start with "mysql://"'),
        ("mysql://bridge:secret@db/x", "migrate-storage --to: must not hold a password"),
    ],
)
def test_a_bad_target_url_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], to: str, message: str
) -> None:
    database = str(tmp_path / "bridge.sqlite3")
    code, out, err = run(capsys, "migrate-storage", "--database", database, "--to", to)
    assert (code, out) == (2, "")
    assert err.startswith(message)
    assert "secret" not in err


def test_the_password_given_both_ways_or_empty_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments = ["migrate-storage", "--database", str(tmp_path / "x.sqlite3")]
    arguments += ["--to", "mysql://bridge@127.0.0.1:9/bridge"]
    monkeypatch.setenv(TARGET_PASSWORD_VARIABLE, "from-the-environment")
    with_file = [*arguments, "--password-file", str(password_file(tmp_path))]
    code, _, err = run(capsys, *with_file)
    assert code == 2
    assert "--password-file or CRYPTUM_BRIDGE_TARGET_PASSWORD, not both" in err
    monkeypatch.delenv(TARGET_PASSWORD_VARIABLE)
    code, _, err = run(capsys, *arguments, "--password-file", str(password_file(tmp_path, "")))
    assert (code, err.strip()) == (
        2,
        f"migrate-storage --password-file: {tmp_path}/target_password is empty",
    )
    code, _, err = run(capsys, *arguments, "--password-file", str(tmp_path / "missing"))
    assert code == 1 and "No such file" in err


async def test_a_refused_password_and_a_non_empty_target_exit_1(
    tmp_path: Path, target: StorageConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    source = await fill_source(tmp_path)
    database = str(source.settings.database_path)
    arguments = ["migrate-storage", "--database", database, "--to", str(target.url)]
    wrong = password_file(tmp_path, "not-the-password")
    code, _, err = await asyncio.to_thread(run, capsys, *arguments, "--password-file", str(wrong))
    assert code == 1
    assert f"cannot connect to {target.url}: Access denied for user 'bridge'" in err
    assert "not-the-password" not in err

    right = ["--password-file", str(password_file(tmp_path))]
    assert (await asyncio.to_thread(run, capsys, *arguments, *right))[0] == 0
    code, _, err = await asyncio.to_thread(run, capsys, *arguments, *right)
    assert code == 1
    assert err.startswith(f"storage: {target.url} is not empty: it holds 8 events, 8 deliveries")


def test_an_unencrypted_connection_to_another_machine_is_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_fill_before_the_key(sqlite_settings(tmp_path, key=False)))
    database = str(tmp_path / "bridge.sqlite3")
    to = "mysql://bridge@db.invalid:3306/bridge"
    code, _, err = run(capsys, "migrate-storage", "--database", database, "--to", to)
    assert code == 1
    first, second = err.splitlines()
    assert first.startswith("warning: migrate-storage: --tls is off for a MySQL server on another")
    assert second.startswith(f"storage: cannot connect to {to}: ")
    assert target_settings(to, tls=True).warnings() == []
    assert target_settings(to, tls_ca_file=tmp_path / "ca.pem").tls


def test_a_copy_that_differs_from_its_source_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def short_copy(*arguments: Any, **options: Any) -> CopyReport:
        tables = (
            TableCount("events", 9, 8, 9, 8),
            TableCount("deliveries", 9, 9, 9, 9),
        )
        return CopyReport("source", "target", tables)

    monkeypatch.setattr("bridge.storage.copying.copy_storage", short_copy)
    database = str(tmp_path / "bridge.sqlite3")
    to = "mysql://bridge@127.0.0.1:9/bridge"
    code, out, err = run(capsys, "migrate-storage", "--database", database, "--to", to)
    assert code == 1
    assert out.splitlines()[-2].split() == ["events", "9", "8", "9", "/", "8", "DIFFERS"]
    assert err.startswith("migrate-storage: the copy differs from the source (events); keep using")
