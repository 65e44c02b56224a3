"""Storage: the one interface the bridge keeps its events and deliveries behind.

`Storage` (interface.py) is every operation the rest of the bridge needs, in
its own terms; `records.py` holds what it reads and writes. The SQLite engine
(`SqliteStorage`, the `sqlite*.py` modules) implements it; all SQL lives here.
"""

from __future__ import annotations

from .errors import StorageError, StorageUnavailable
from .interface import Storage
from .opening import open_storage
from .records import (
    FINISHED_STATES,
    DeliveryRow,
    DeliveryRun,
    DeliveryState,
    EventFacts,
    EventRow,
    Job,
    NewEvent,
    Progress,
    Recorded,
)
from .sqlite import SqliteStorage

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
    "SqliteStorage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "open_storage",
]
