"""An event as every engine writes it, and the key that makes two events the same."""

from __future__ import annotations

from dataclasses import dataclass

from .records import NewEvent

__all__ = ["Key", "StoredEvent", "identity_key"]


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
