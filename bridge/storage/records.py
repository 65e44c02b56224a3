"""What storage holds, as the rest of the bridge sees it: events, deliveries, their states.

Engine-neutral: every storage engine reads and writes these, so the worker,
reconciliation and the admin commands never see a row or a cursor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

__all__ = [
    "FINISHED_STATES",
    "DeliveryRow",
    "DeliveryRun",
    "DeliveryState",
    "EventFacts",
    "EventRow",
    "Job",
    "NewEvent",
    "Progress",
    "Recorded",
]


class DeliveryState(StrEnum):
    """Where a delivery is: waiting for its next attempt, or ended one of three ways."""

    PENDING = "pending"
    DONE = "done"  # the order was changed, or noted, as the rules say
    SKIPPED = "skipped"  # nothing to change
    DEAD = "dead"  # given up on: an admin must look


FINISHED_STATES = (DeliveryState.DONE, DeliveryState.SKIPPED, DeliveryState.DEAD)


class Progress(StrEnum):
    """How far a pending delivery got: whether a plan may already have been acted on."""

    NEW = "new"  # nothing done to the order yet: decide afresh
    ACTING = "acting"  # a plan is saved and may have been carried out: finish that plan


# EventFacts, NewEvent and Recorded are made for every callback: named tuples,
# immutable like the frozen dataclasses around them, are built in C, where
# a frozen dataclass sets each field through a Python call (docs/benchmarks.md).
class EventFacts(NamedTuple):
    """What a delivery needs of an event beyond its indexed ids and status.

    Taken from the callback once, when it is accepted (or from the API, for
    reconciliation's events), so no attempt parses a stored body again.
    `message` is Cryptum's free text: stored like the payload (sealed when a
    key is configured) and dropped with the payload's personal data.
    """

    transactions: tuple[tuple[str, str], ...] = ()  # (protocol, hash)
    message: str | None = None

    def to_json(self) -> bytes:
        document = {"transactions": [list(t) for t in self.transactions], "message": self.message}
        # orjson writes every callback's facts in a tenth of the time; the
        # stdlib's form (non-ASCII escaped) is kept for anything else, so
        # the stored bytes are what they always were.
        written = orjson.dumps(document)
        if written.isascii():
            return written
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, stored: bytes) -> EventFacts:
        document = json.loads(stored)
        transactions = tuple((str(p), str(h)) for p, h in document["transactions"])
        return cls(transactions=transactions, message=document["message"])

    def redacted(self) -> EventFacts:
        """Without the free text, which may name the customer."""
        return EventFacts(transactions=self.transactions)


class NewEvent(NamedTuple):
    """A verified callback, ready to be stored."""

    store: str
    body_sha256: bytes
    source: str
    signature_form: str | None
    request_id: str | None
    cryptum_order_id: str
    woo_order_id: str
    status: str
    payload: bytes
    facts: EventFacts = EventFacts()


class Recorded(NamedTuple):
    """What storing a callback came to: its event's id, and whether it was stored before."""

    event_id: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event as the admin commands show it."""

    id: int
    store: str
    received_at: float
    source: str
    signature_form: str | None
    request_id: str | None
    cryptum_order_id: str
    woo_order_id: str
    status: str
    delivery_id: int | None
    delivery_state: str | None
    delivery_attempts: int | None
    delivery_last_error: str | None
    payload: bytes | None = None

    def summary(self) -> dict[str, Any]:
        """The row as plain data, without the payload."""
        return {
            "id": self.id,
            "store": self.store,
            "received_at": self.received_at,
            "source": self.source,
            "signature_form": self.signature_form,
            "request_id": self.request_id,
            "cryptum_order_id": self.cryptum_order_id,
            "woo_order_id": self.woo_order_id,
            "status": self.status,
            "delivery": None
            if self.delivery_id is None
            else {
                "id": self.delivery_id,
                "state": self.delivery_state,
                "attempts": self.delivery_attempts,
                "last_error": self.delivery_last_error,
            },
        }


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery with what the worker needs from its event."""

    delivery_id: int
    event_id: int
    store: str
    woo_order_id: str
    cryptum_order_id: str
    status: str
    # None for an event stored before its facts were: then its `payload`.
    facts: EventFacts | None
    attempts: int
    progress: Progress
    decision: dict[str, Any] | None
    generation: int
    age_from: float
    # How the event's callback was authenticated: a signature form, "unsigned"
    # (a store with allow_unsigned), or None for reconciliation's own events.
    signature_form: str | None = None
    # The stored callback in the clear, only for an event without `facts`.
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A delivery as the admin commands show it."""

    id: int
    event_id: int
    store: str
    woo_order_id: str
    cryptum_order_id: str
    status: str
    state: str
    progress: Progress
    attempts: int
    next_attempt_at: float
    last_error: str | None
    outcome: str | None
    created_at: float
    updated_at: float

    def summary(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class DeliveryRun:
    """An earlier run of a delivery, as it ended before the delivery was run again."""

    generation: int
    state: str
    outcome: str | None
    last_error: str | None
    attempts: int
    started_at: float
    finished_at: float
    requeued_at: float

    def summary(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}
