"""Writing callbacks into MySQL: a batch per transaction, duplicates found by key, across nodes.

The transaction reads which of the batch's keys are stored already, inserts
the others with their deliveries, and commits. Two nodes storing the same
callback at the same moment: the second one's insert waits on the first
one's lock on the unique key, and once that commits it fails with a
duplicate-key error (1062); the whole batch is then run again, and this
time its read finds the event, so both nodes answer with the one event's id.
"""

from __future__ import annotations

from .mysql_connection import DUPLICATE_KEY, Cursor, MysqlPool
from .records import Recorded
from .stored import (
    EVENT_COLUMNS,
    Key,
    StoredEvent,
    event_values,
    identity_key,
    recorded_in_order,
)

__all__ = ["STATEMENT_BYTES", "insert_events", "statement_chunks"]

# Payload bytes per INSERT statement; a quarter of MariaDB's default max_allowed_packet.
STATEMENT_BYTES = 4 * 1024 * 1024


async def insert_events(pool: MysqlPool, events: list[StoredEvent], now: float) -> list[Recorded]:
    """Store a batch in one transaction; each event's id, and whether it was stored before."""
    if not events:
        return []
    # A duplicate key: another node committed one of these keys after this
    # batch read them; the next run finds it.
    return await pool.transaction(
        lambda cursor: _store(cursor, events, now), also_retry=frozenset({DUPLICATE_KEY})
    )


async def _store(cursor: Cursor, events: list[StoredEvent], now: float) -> list[Recorded]:
    keys = list(dict.fromkeys(identity_key(stored) for stored in events))
    stored_before = await _find(cursor, keys)
    new: dict[Key, StoredEvent] = {}
    for stored in events:
        key = identity_key(stored)
        if key not in stored_before:
            new.setdefault(key, stored)  # the first of identical callbacks is the one kept
    inserted: dict[Key, int] = {}
    if new:
        await _insert(cursor, list(new.values()), now)
        inserted = await _find(cursor, list(new))
        await _add_deliveries(cursor, sorted(inserted.values()))
    return recorded_in_order(events, inserted, stored_before)


async def _find(cursor: Cursor, keys: list[Key]) -> dict[Key, int]:
    """The ids of the events stored under `keys`."""
    placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(keys))
    await cursor.execute(
        "SELECT store, cryptum_order_id, status, body_sha256, id FROM events"
        f" WHERE (store, cryptum_order_id, status, body_sha256) IN ({placeholders})",
        [value for key in keys for value in key],
    )
    return {(row[0], row[1], row[2], bytes(row[3])): int(row[4]) for row in await cursor.fetchall()}


async def _insert(cursor: Cursor, events: list[StoredEvent], now: float) -> None:
    """Insert in statements of at most `STATEMENT_BYTES` of payloads (at least one event each)."""
    row = "(" + ", ".join(["%s"] * 11) + ")"
    for chunk in statement_chunks(events):
        await cursor.execute(
            f"INSERT INTO events ({EVENT_COLUMNS}) VALUES {', '.join([row] * len(chunk))}",
            [value for stored in chunk for value in event_values(stored, now)],
        )


def statement_chunks(events: list[StoredEvent]) -> list[list[StoredEvent]]:
    """The batch cut into consecutive runs of at most `STATEMENT_BYTES` of payload and facts.

    A statement must fit the server's `max_allowed_packet` (16 MiB by default
    on MariaDB, and on the driver's side): a full batch of the largest
    callbacks would not, and would then fail every time it is retried.
    """
    chunks: list[list[StoredEvent]] = []
    size = STATEMENT_BYTES
    for stored in events:
        weight = len(stored.payload) + len(stored.facts)
        if size + weight > STATEMENT_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(stored)
        size += weight
    return chunks


async def _add_deliveries(cursor: Cursor, event_ids: list[int]) -> None:
    """Each new event's delivery, due at once, in the event's own transaction."""
    placeholders = ", ".join(["%s"] * len(event_ids))
    await cursor.execute(
        "INSERT INTO deliveries (event_id, store, woo_order_id, next_attempt_at, age_from,"
        " created_at, updated_at)"
        " SELECT id, store, woo_order_id, received_at, received_at, received_at, received_at"
        f" FROM events WHERE id IN ({placeholders}) ORDER BY id",
        event_ids,
    )
