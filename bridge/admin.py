"""Admin commands over the database: tables for people, JSON for programs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .storage import Database, EventRow

__all__ = ["list_events", "render_table", "show_event"]


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in [headers, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _delivery(row: EventRow) -> str:
    if row.delivery_state is None:
        return "-"
    return f"{row.delivery_state} ({row.delivery_attempts} attempts)"


async def list_events(
    database_path: Path, out: TextIO, *, limit: int, store: str | None, as_json: bool
) -> None:
    database = await Database.open(database_path, create=False)
    try:
        rows = await database.list_events(limit=limit, store=store)
    finally:
        await database.close()
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


async def show_event(database_path: Path, out: TextIO, event_id: int, *, as_json: bool) -> bool:
    """Print one event with its payload; False if there is no such event."""
    database = await Database.open(database_path, create=False)
    try:
        row = await database.get_event(event_id)
    finally:
        await database.close()
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
        out.write(f"{key + ':':<18}{value if value is not None else '-'}\n")
    if delivery is not None:
        out.write(
            f"{'delivery:':<18}#{delivery['id']} {delivery['state']}, "
            f"{delivery['attempts']} attempts, last error: {delivery['last_error'] or '-'}\n"
        )
    out.write(f"payload:\n{payload_text}\n")
    return True
