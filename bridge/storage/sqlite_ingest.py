"""Writing callbacks into SQLite: a whole batch in one statement, duplicates found by key."""

from __future__ import annotations

import aiosqlite

from .records import Recorded
from .stored import (
    EVENT_COLUMNS,
    Key,
    StoredEvent,
    event_values,
    identity_key,
    recorded_in_order,
)

__all__ = ["insert_events"]

_EVENT_INSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


async def insert_events(
    connection: aiosqlite.Connection, events: list[StoredEvent], now: float
) -> list[Recorded]:
    """Store a batch in one statement, which SQLite commits atomically on its own.

    One statement means one round trip to SQLite's thread however large the
    batch; under load each round trip waits a turn of the busy event loop, so
    their number, not SQLite, sets the latency. A trigger adds each new
    event's delivery in the same statement. Only when some callbacks were
    already stored does a second, read-only query find their events.
    """
    if not events:
        return []
    inserted = await _insert_new(connection, events, now)
    keys = [identity_key(stored) for stored in events]
    missing = list(dict.fromkeys(key for key in keys if key not in inserted))
    stored_before = await _find_stored(connection, missing) if missing else {}
    return recorded_in_order(events, inserted, stored_before)


async def _insert_new(
    connection: aiosqlite.Connection, events: list[StoredEvent], now: float
) -> dict[Key, int]:
    """Insert what is new; the ids of the rows inserted, by key."""
    rows = await connection.execute_fetchall(
        f"""
        INSERT INTO events ({EVENT_COLUMNS})
        VALUES {", ".join([_EVENT_INSERT_ROW] * len(events))}
        ON CONFLICT (store, cryptum_order_id, status, body_sha256) DO NOTHING
        RETURNING store, cryptum_order_id, status, body_sha256, id
        """,
        [value for stored in events for value in event_values(stored, now)],
    )
    return {(row[0], row[1], row[2], row[3]): row[4] for row in rows}


async def _find_stored(connection: aiosqlite.Connection, keys: list[Key]) -> dict[Key, int]:
    """The ids of events stored before, by key."""
    # CROSS JOIN keeps the keys as the outer loop: one lookup each in the
    # unique index, which needs all four of its columns.
    placeholders = ", ".join(["(?, ?, ?, ?)"] * len(keys))
    found = await connection.execute_fetchall(
        "SELECT e.store, e.cryptum_order_id, e.status, e.body_sha256, e.id"
        f" FROM (VALUES {placeholders}) AS k"
        " CROSS JOIN events AS e ON e.store = k.column1 AND e.cryptum_order_id = k.column2"
        " AND e.status = k.column3 AND e.body_sha256 = k.column4",
        [value for key in keys for value in key],
    )
    return {(row[0], row[1], row[2], row[3]): row[4] for row in found}
