"""An event as every engine writes it, and the key that makes two events the same."""

from __future__ import annotations

from typing import Any, NamedTuple

from .records import NewEvent, Recorded

__all__ = [
    "EVENT_COLUMNS",
    "Key",
    "StoredEvent",
    "event_values",
    "identity_key",
    "recorded_in_order",
]


class StoredEvent(NamedTuple):
    """An event as it is written: its payload and facts sealed when a key is configured.

    A named tuple, as `NewEvent` is: one is made for every callback.
    """

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


def recorded_in_order(
    events: list[StoredEvent], inserted: dict[Key, int], stored_before: dict[Key, int]
) -> list[Recorded]:
    """Each event's answer, in the batch's order, from the ids of what a batch stored.

    `inserted`: the keys this batch stored; `stored_before`: the others. The
    first of identical callbacks in one batch is the accepted one, the rest
    its duplicates. Neither dict is changed.
    """
    fresh, known = dict(inserted), dict(stored_before)
    recorded = []
    for stored in events:
        key = identity_key(stored)
        event_id = fresh.pop(key, None)
        if event_id is not None:
            recorded.append(Recorded(event_id=event_id, duplicate=False))
            known[key] = event_id
        else:
            recorded.append(Recorded(event_id=known[key], duplicate=True))
    return recorded
