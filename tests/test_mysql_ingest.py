"""Large callbacks on MySQL: a batch is written in statements that fit the server's packet."""

from __future__ import annotations

import asyncio
import hashlib

from bridge.storage import NewEvent, open_storage
from bridge.storage.mysql_ingest import STATEMENT_BYTES, statement_chunks
from bridge.storage.stored import StoredEvent

from engines import mariadb_settings
from mariadb import MariaDB

MIB = 1024 * 1024


def stored(key: str, payload_bytes: int, facts_bytes: int = 0) -> StoredEvent:
    event = NewEvent(
        store="main",
        body_sha256=hashlib.sha256(key.encode()).digest(),
        source="callback",
        signature_form="json",
        request_id=None,
        cryptum_order_id=f"c-{key}",
        woo_order_id="1",
        status="confirmed",
        payload=b"p" * payload_bytes,
    )
    return StoredEvent(event, event.payload, b"f" * facts_bytes)


def test_no_events_make_no_statement() -> None:
    assert statement_chunks([]) == []


def test_small_events_share_one_statement() -> None:
    events = [stored(str(i), 1000, 100) for i in range(256)]
    assert statement_chunks(events) == [events]


def test_a_statement_holds_payloads_and_facts_up_to_the_limit_in_order() -> None:
    quarter = STATEMENT_BYTES // 4
    # Four events of exactly a quarter fill a statement; facts count too.
    events = [stored(str(i), quarter - 10, 10) for i in range(9)]
    assert statement_chunks(events) == [events[0:4], events[4:8], events[8:9]]
    heavier = [stored(str(i), quarter - 10, 11) for i in range(4)]
    assert statement_chunks(heavier) == [heavier[0:3], heavier[3:4]]


def test_an_event_larger_than_the_limit_gets_a_statement_of_its_own() -> None:
    small, huge, tail = stored("a", 10), stored("b", STATEMENT_BYTES + 1), stored("c", 10)
    assert statement_chunks([small, huge, tail]) == [[small], [huge], [tail]]


async def test_a_batch_of_large_callbacks_larger_than_a_packet_is_stored_whole(
    mariadb: MariaDB,
) -> None:
    # 40 callbacks of 1 MiB arriving at once: one batch of 40 MiB, more than
    # MariaDB's 16 MiB max_allowed_packet in a single statement.
    storage = await open_storage(mariadb_settings(mariadb))
    try:
        events = [stored(f"big-{i}", MIB).event for i in range(40)]
        recorded = await asyncio.gather(*[storage.record_event(event) for event in events])
        assert not any(r.duplicate for r in recorded)
        assert await storage.count_events() == 40
        batches, items = storage.commit_stats
        assert items == 40 and batches < 40, "the callbacks were not committed together"
        row = await storage.get_event(recorded[-1].event_id)
        assert row is not None and row.payload == b"p" * MIB
    finally:
        await storage.close()
