"""Admin commands over the storage, on either engine: tables for people, JSON for programs.

Values in tables and text come from callbacks and shops, so control
characters in them are shown escaped (`text.escape_controls`): one row stays
one line and nothing reaches the terminal as an escape sequence. JSON output
is left exact.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from .config import StorageConfig
from .storage import (
    FINISHED_STATES,
    DeliveryRow,
    DeliveryState,
    EventRow,
    Storage,
    open_storage,
)
from .text import escape_controls

__all__ = [
    "list_deliveries",
    "list_events",
    "render_table",
    "replay_event",
    "retry_dead",
    "show_delivery",
    "show_event",
    "show_stats",
]


@asynccontextmanager
async def _opened(settings: StorageConfig) -> AsyncIterator[Storage]:
    """The storage `settings` name, on either engine, as it is: never created or migrated.

    Admin commands run beside the daemon, so they take no instance lock and
    run no background work; a database older than this program is refused
    rather than migrated under a daemon that still runs the old code.
    """
    storage = await open_storage(settings, serve=False)
    try:
        yield storage
    finally:
        await storage.close()


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces, one line per row."""
    headers = [escape_controls(header) for header in headers]
    rows = [[escape_controls(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in [headers, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _field(name: str, value: Any) -> str:
    """One `name: value` line of a record shown as text."""
    shown = "-" if value is None else escape_controls(str(value))
    return f"{name + ':':<18}{shown}\n"


def _delivery(row: EventRow) -> str:
    if row.delivery_state is None:
        return "-"
    return f"{row.delivery_state} ({row.delivery_attempts} attempts)"


async def list_events(
    settings: StorageConfig, out: TextIO, *, limit: int, store: str | None, as_json: bool
) -> None:
    async with _opened(settings) as storage:
        rows = await storage.list_events(limit=limit, store=store)
    if as_json:
        json.dump([row.summary() for row in rows], out, indent=2)
        out.write("\n")
        return
    table = [
        [
            str(row.id),
            _when(row.received_at),
            row.store,
            row.cryptum_order_id,
            row.woo_order_id,
            row.status,
            row.source,
            _delivery(row),
        ]
        for row in rows
    ]
    headers = [
        "ID",
        "RECEIVED (UTC)",
        "STORE",
        "CRYPTUM ORDER",
        "WOO ORDER",
        "STATUS",
        "SOURCE",
        "DELIVERY",
    ]
    out.write(render_table(headers, table) + "\n")


async def show_event(settings: StorageConfig, out: TextIO, event_id: int, *, as_json: bool) -> bool:
    """Print one event with its payload (opened with the settings' keys); False if there is none."""
    async with _opened(settings) as storage:
        row = await storage.get_event(event_id)
    if row is None:
        return False
    details: dict[str, Any] = row.summary()
    payload_text = (row.payload or b"").decode("utf-8", errors="replace")
    if as_json:
        try:
            details["payload"] = json.loads(payload_text)
        except ValueError:
            details["payload"] = payload_text
        json.dump(details, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return True
    delivery = details.pop("delivery")
    details["received_at"] = _when(row.received_at) + " UTC"
    for key, value in details.items():
        out.write(_field(key, value))
    if delivery is not None:
        summary = (
            f"#{delivery['id']} {delivery['state']}, {delivery['attempts']} attempts, "
            f"last error: {delivery['last_error'] or '-'}"
        )
        out.write(_field("delivery", summary))
    # A pretty-printed body keeps its lines; anything else is escaped.
    out.write(f"payload:\n{escape_controls(payload_text, multiline=True)}\n")
    return True


def _dump(data: Any, out: TextIO) -> None:
    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")


async def list_deliveries(
    settings: StorageConfig,
    out: TextIO,
    *,
    state: str | None,
    store: str | None,
    limit: int,
    as_json: bool,
) -> None:
    async with _opened(settings) as storage:
        rows = await storage.list_deliveries(state=state, store=store, limit=limit)
    if as_json:
        _dump([row.summary() for row in rows], out)
        return
    table = [
        [
            str(row.id),
            str(row.event_id),
            row.store,
            row.woo_order_id,
            row.status,
            row.state,
            str(row.attempts),
            _when(row.updated_at),
            row.outcome or row.last_error or "-",
        ]
        for row in rows
    ]
    headers = [
        "ID",
        "EVENT",
        "STORE",
        "WOO ORDER",
        "STATUS",
        "STATE",
        "ATTEMPTS",
        "UPDATED (UTC)",
        "OUTCOME / LAST ERROR",
    ]
    out.write(render_table(headers, table) + "\n")


async def show_delivery(
    settings: StorageConfig, out: TextIO, delivery_id: int, *, as_json: bool
) -> bool:
    """One delivery with its earlier runs (before a replay or retry); False if there is none."""
    async with _opened(settings) as storage:
        row: DeliveryRow | None = await storage.get_delivery(delivery_id)
        runs = await storage.delivery_runs(delivery_id) if row is not None else []
    if row is None:
        return False
    details = row.summary()
    if as_json:
        _dump({**details, "earlier_runs": [run.summary() for run in runs]}, out)
        return True
    for key in ("next_attempt_at", "created_at", "updated_at"):
        details[key] = _when(details[key]) + " UTC"
    for key, value in details.items():
        out.write(_field(key, value))
    if runs:
        out.write("earlier runs:\n")
        headers = ["RUN", "STATE", "ATTEMPTS", "FINISHED (UTC)", "RUN AGAIN (UTC)", "OUTCOME"]
        table = [
            [
                str(run.generation),
                run.state,
                str(run.attempts),
                _when(run.finished_at),
                _when(run.requeued_at),
                run.outcome or run.last_error or "-",
            ]
            for run in runs
        ]
        out.write(render_table(headers, table) + "\n")
    return True


async def retry_dead(settings: StorageConfig, *, delivery_id: int | None) -> int:
    """Queue dead deliveries again (one, or all); returns how many."""
    async with _opened(settings) as storage:
        return await storage.requeue(
            state=DeliveryState.DEAD, delivery_id=delivery_id, now=time.time()
        )


async def replay_event(settings: StorageConfig, event_id: int) -> int:
    """Run an event's finished delivery again; returns 1, or 0 if it is still pending."""
    async with _opened(settings) as storage:
        return await storage.requeue_event(event_id, now=time.time())


async def show_stats(settings: StorageConfig, out: TextIO, *, as_json: bool) -> None:
    """Deliveries waiting, finished runs by how they ended, and the oldest waiting one.

    Finished runs include those a replay or retry started over, so replaying
    a delivery that was done keeps it counted as done; `dead_letters` is what
    waits on the dead-letter list now.
    """
    async with _opened(settings) as storage:
        counts = await storage.delivery_counts()
        finished = await storage.finished_runs()
        oldest = await storage.oldest_pending()
        events = await storage.count_events()
    age = None if oldest is None else max(0.0, time.time() - oldest)
    deliveries = {DeliveryState.PENDING.value: counts.get(DeliveryState.PENDING, 0)}
    deliveries |= {state.value: finished.get(state, 0) for state in FINISHED_STATES}
    figures: dict[str, Any] = {
        "events": events,
        "deliveries": deliveries,
        "dead_letters": counts.get(DeliveryState.DEAD, 0),
        "oldest_pending_age_seconds": None if age is None else round(age, 1),
    }
    if as_json:
        _dump(figures, out)
        return
    out.write(f"events stored:        {events}\n")
    for state, count in figures["deliveries"].items():
        out.write(f"deliveries {state + ':':<11}{count}\n")
    out.write(f"dead letters now:     {figures['dead_letters']}\n")
    waiting = "-" if age is None else f"{age:.0f} s"
    out.write(f"oldest pending:       {waiting}\n")
