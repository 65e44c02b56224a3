"""Writing callbacks into SQLite: a whole batch in one statement, duplicates found by key.

A batch's statement names every row's values, so its size follows the
batch's. SQLite's compiled form of it takes 1.1-1.6 KiB of memory per row,
and Python's `sqlite3` keeps the last 128 distinct statements compiled:
with one statement per batch size, batches of 1 to 64 callbacks held 3 MiB
of them, and of 1 to 256 as much as 37 MiB. So a batch is written with the
statement for the next power of two at or above its size, the places it
does not fill given NULLs that the statement leaves out: nine shapes for
batches of up to 256 (the default most), whatever the load.
"""

from __future__ import annotations

from functools import cache

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
_EVENT_ROW_UNUSED = (None,) * _EVENT_INSERT_ROW.count("?")
_KEY_ROW = "(?, ?, ?, ?)"
_KEY_ROW_UNUSED = (None,) * _KEY_ROW.count("?")


def statement_rows(count: int) -> int:
    """The rows of the statement that writes `count` of them: the next power of two."""
    return 1 << (count - 1).bit_length()


@cache
def _insert_statement(rows: int) -> str:
    # column1 is `store`: never NULL in a real row, NULL in an unused place.
    # SQLite reads the VALUES in order, so the rows are inserted in that
    # order, as by a plain INSERT … VALUES. (A WHERE is also what SQLite's
    # grammar asks of a SELECT followed by ON CONFLICT.)
    return f"""
        INSERT INTO events ({EVENT_COLUMNS})
        SELECT * FROM (VALUES {", ".join([_EVENT_INSERT_ROW] * rows)})
        WHERE column1 IS NOT NULL
        ON CONFLICT (store, cryptum_order_id, status, body_sha256) DO NOTHING
        """


@cache
def _find_statement(rows: int) -> str:
    # CROSS JOIN keeps the keys as the outer loop: one lookup each in the
    # unique index, which needs all four of its columns. An unused place's
    # NULLs equal nothing, so it finds no row.
    return (
        "SELECT e.store, e.cryptum_order_id, e.status, e.body_sha256, e.id"
        f" FROM (VALUES {', '.join([_KEY_ROW] * rows)}) AS k"
        " CROSS JOIN events AS e ON e.store = k.column1 AND e.cryptum_order_id = k.column2"
        " AND e.status = k.column3 AND e.body_sha256 = k.column4"
    )


async def insert_events(
    connection: aiosqlite.Connection, events: list[StoredEvent], now: float
) -> list[Recorded]:
    """Store a batch in one statement, which SQLite commits atomically on its own.

    The statement runs in a single step of SQLite's engine. That matters more
    than it seems: SQLite's thread gives up the GIL around every step and
    must win it back from the busy event loop afterwards, so a statement
    returning a row per event (`RETURNING`) costs a wait per event, and
    those waits, not SQLite, set the latency under load. The ids come from
    the statement itself instead: one connection inserting rows without
    explicit ids gives them consecutive rowids in the order of `VALUES`, so
    the last rowid and the count of rows inserted name every one. Only when
    some callbacks were already stored does a read-only query find which.
    A trigger adds each new event's delivery in the same statement.
    """
    if not events:
        return []
    rows = statement_rows(len(events))
    values = [value for stored in events for value in event_values(stored, now)]
    values += _EVENT_ROW_UNUSED * (rows - len(events))
    cursor = await connection.execute(_insert_statement(rows), values)
    # Rows a trigger inserts count in neither figure (sqlite3_changes and
    # sqlite3_last_insert_rowid leave them out).
    inserted_count, last_id = cursor.rowcount, cursor.lastrowid or 0
    # This statement's rows are the last `inserted_count` rowids (none if 0).
    this_statement = range(last_id - inserted_count + 1, last_id + 1)
    if len(this_statement) == len(events):
        # Every row was new (a conflict, even within the batch, inserts fewer):
        # each event has the id of its place in VALUES.
        return [Recorded(event_id, False) for event_id in this_statement]
    keys = [identity_key(stored) for stored in events]
    found = await _find_stored(connection, list(dict.fromkeys(keys)))
    inserted, stored_before = {}, {}
    for key, event_id in found.items():
        # Every key of the batch is stored now: by this statement, or before
        # it, with a lower id.
        if event_id in this_statement:
            inserted[key] = event_id
        else:
            stored_before[key] = event_id
    return recorded_in_order(events, inserted, stored_before)


async def _find_stored(connection: aiosqlite.Connection, keys: list[Key]) -> dict[Key, int]:
    """The ids of the events with these keys, by key."""
    rows = statement_rows(len(keys))
    values: list[str | bytes | None] = [value for key in keys for value in key]
    values += _KEY_ROW_UNUSED * (rows - len(keys))
    found = await connection.execute_fetchall(_find_statement(rows), values)
    return {(row[0], row[1], row[2], row[3]): row[4] for row in found}
