"""Retention: what is gone after retention_days, and what stays."""

from __future__ import annotations

import hashlib
import json

import pytest

from bridge.config import StorageConfig
from bridge.payload import parse_callback
from bridge.retention import RETENTION_TASK, RetentionJob, redact_payload
from bridge.storage import EventFacts, NewEvent, open_storage

from engines import mariadb_settings, sql
from mariadb import MariaDB
from support import CUSTOMER_EMAIL, CUSTOMER_NAME, callback_body

DAY = 86400.0


def event(body: bytes) -> NewEvent:
    callback = parse_callback(body)
    return NewEvent(
        store="main",
        body_sha256=hashlib.sha256(body).digest(),
        source="callback",
        signature_form="json",
        request_id=None,
        cryptum_order_id=callback.order_id,
        woo_order_id=callback.ecommerce_order_id,
        status=callback.status,
        payload=body,
        facts=EventFacts(
            transactions=tuple((t.protocol, t.hash) for t in callback.transactions or ()),
            message=callback.message,
        ),
    )


def test_redaction_keeps_ids_status_and_transactions_only() -> None:
    body = callback_body(order_id="o-1", woo_order_id="7", note="call me", customer={"phone": "1"})
    kept = json.loads(redact_payload(body))
    assert set(kept) == {"status", "orderId", "ecommerceOrderId", "storeId", "transactions"}
    assert (kept["orderId"], kept["ecommerceOrderId"], kept["status"]) == ("o-1", "7", "confirmed")
    assert kept["transactions"] == [
        {"protocol": t["protocol"], "hash": t["hash"]} for t in json.loads(body)["transactions"]
    ]
    assert CUSTOMER_EMAIL.encode() not in redact_payload(body)
    # A redacted payload is still a callback the worker can deliver or replay.
    assert parse_callback(redact_payload(body)).order_id == "o-1"


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b"\xff"])
def test_anything_else_is_emptied(payload: bytes) -> None:
    assert redact_payload(payload) == b"{}"


async def test_old_payloads_lose_personal_data_and_recent_ones_keep_it(
    storage_settings: StorageConfig,
) -> None:
    database = await open_storage(storage_settings)
    try:
        old_body = callback_body(order_id="old")
        old = await database.record_event(event(old_body))
        new = await database.record_event(event(callback_body(order_id="new")))
        now = 2_000_000_000.0
        await sql(
            database, "UPDATE events SET received_at = ? WHERE id = ?", now - 91 * DAY, old.event_id
        )
        await sql(
            database, "UPDATE events SET received_at = ? WHERE id = ?", now - 89 * DAY, new.event_id
        )
        before = await database.get_event(old.event_id)
        job = RetentionJob(database, retention_days=90, clock=lambda: now)
        assert await job.run_once() == 1
        assert await job.run_once() == 0  # nothing left to do

        old_row = await database.get_event(old.event_id)
        new_row = await database.get_event(new.event_id)
        assert old_row is not None and new_row is not None and before is not None
        for personal in (CUSTOMER_EMAIL, CUSTOMER_NAME, "Payment was successful"):
            assert personal.encode() not in (old_row.payload or b"")
            assert personal.encode() in (new_row.payload or b"")
        # What stays: ids, status, the delivery and its state, the dedupe hash.
        assert old_row.summary() == before.summary()
        rows = await sql(database, "SELECT redacted_at FROM events WHERE id = ?", old.event_id)
        assert rows == [(now,)]
        # The facts a delivery reads lose the free text too, and keep the transactions.
        stored = await sql(database, "SELECT id, facts FROM events")
        facts = {event_id: EventFacts.from_json(blob) for event_id, blob in stored}
        kept = event(old_body).facts.transactions
        assert kept and facts[old.event_id] == EventFacts(transactions=kept)
        assert facts[new.event_id].message == "Payment was successful"
        # The dedupe hash stays: the same callback again is still a duplicate.
        again = await database.record_event(event(old_body))
        assert (again.duplicate, again.event_id) == (True, old.event_id)
    finally:
        await database.close()


async def test_the_plan_of_a_finished_delivery_goes_with_the_personal_data(
    storage_settings: StorageConfig,
) -> None:
    database = await open_storage(storage_settings)
    try:
        finished = await database.record_event(event(callback_body(order_id="finished")))
        waiting = await database.record_event(event(callback_body(order_id="waiting")))
        now = 2_000_000_000.0
        # A plan as earlier versions saved it, with the callback's message in its meta.
        plan = json.dumps({"note": "n", "changes": {"meta_data": [{"value": CUSTOMER_NAME}]}})
        await sql(database, "UPDATE events SET received_at = ?", now - 91 * DAY)
        await sql(database, "UPDATE deliveries SET decision = ?", plan)
        await sql(
            database, "UPDATE deliveries SET state = 'done' WHERE event_id = ?", finished.event_id
        )
        assert await RetentionJob(database, retention_days=90, clock=lambda: now).run_once() == 2
        rows = dict(await sql(database, "SELECT event_id, decision FROM deliveries"))
        assert rows[finished.event_id] is None
        # A delivery still pending may resume its plan.
        assert rows[waiting.event_id] == plan
    finally:
        await database.close()


async def test_a_backlog_is_redacted_batch_after_batch_and_counted_whole(
    storage_settings: StorageConfig,
) -> None:
    database = await open_storage(storage_settings)
    try:
        # More than one batch (500) of old callbacks.
        for index in range(501):
            await database.record_event(event(callback_body(order_id=f"old-{index}")))
        now = 2_000_000_000.0
        await sql(database, "UPDATE events SET received_at = ?", now - 91 * DAY)
        assert await RetentionJob(database, retention_days=90, clock=lambda: now).run_once() == 501
        rows = await sql(database, "SELECT count(*) FROM events WHERE redacted_at IS NULL")
        assert rows == [(0,)]
    finally:
        await database.close()


async def test_an_event_stored_before_facts_were_kept_is_redacted_too(
    storage_settings: StorageConfig,
) -> None:
    database = await open_storage(storage_settings)
    try:
        old = await database.record_event(event(callback_body(order_id="old")))
        now = 2_000_000_000.0
        await sql(database, "UPDATE events SET received_at = ?, facts = NULL", now - 91 * DAY)
        assert await RetentionJob(database, retention_days=90, clock=lambda: now).run_once() == 1
        row = await database.get_event(old.event_id)
        assert row is not None and CUSTOMER_NAME.encode() not in (row.payload or b"")
        facts = await sql(database, "SELECT facts FROM events")
        assert facts == [(None,)]
    finally:
        await database.close()


async def test_on_a_shared_database_one_node_at_a_time_redacts(mariadb: MariaDB) -> None:
    settings = mariadb_settings(mariadb)
    first, second = await open_storage(settings), await open_storage(settings)
    try:
        await first.record_event(event(callback_body(order_id="old")))
        now = 2_000_000_000.0
        await sql(first, "UPDATE events SET received_at = ?", now - 91 * DAY)
        # The second node took the task first: the first node redacts nothing ...
        assert await second.hold_task_lease(RETENTION_TASK, now=now - 1, seconds=3600)
        assert await RetentionJob(first, retention_days=90, clock=lambda: now).run_once() == 0
        assert await sql(first, "SELECT count(*) FROM events WHERE redacted_at IS NULL") == [(1,)]
        # ... until that node stops and hands it over.
        stopping = RetentionJob(second, retention_days=90, clock=lambda: now)
        stopping.start()  # its loop may run a pass before it stops: either is fine here
        await stopping.stop()
        assert await first.hold_task_lease(RETENTION_TASK, now=now, seconds=3600)
        await RetentionJob(first, retention_days=90, clock=lambda: now).run_once()
        assert await sql(first, "SELECT count(*) FROM events WHERE redacted_at IS NULL") == [(0,)]
    finally:
        await first.close()
        await second.close()
