"""An event as every engine writes it, and the key that makes two events the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .records import NewEvent

__all__ = ["EVENT_COLUMNS", "Key", "StoredEvent", "event_values", "identity_key"]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as it is written: its payload and facts sealed when a key is configured."""

    event: NewEvent
    payload: bytes
    facts: bytes


# The columns of the events' unique key: (store, Cryptum order, status, body hash).
Key = tuple[str, str, str, bytes]


def identity_key(stored: StoredEvent) -> Key:
    event = stored.event
    return (event.store, event.cryptum_order_id, event.status, event.body_sha256)


# The columns an engine writes for a new event, in the order `event_values` gives them.
EVENT_COLUMNS = (
    "store, body_sha256, received_at, source, signature_form, request_id,"
    " cryptum_order_id, woo_order_id, status, payload, facts"
)


def event_values(stored: StoredEvent, received_at: float) -> tuple[Any, ...]:
    """The values of `EVENT_COLUMNS` for one event."""
    event = stored.event
    return (
        event.store,
        event.body_sha256,
        received_at,
        event.source,
        event.signature_form,
        event.request_id,
        event.cryptum_order_id,
        event.woo_order_id,
        event.status,
        stored.payload,
        stored.facts,
    )
