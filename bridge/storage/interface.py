"""The one storage interface: every operation the bridge needs, in its own terms.

An engine (SQLite today) implements it whole; nothing outside
`bridge/storage/` sees a connection, a cursor or SQL. Opening a storage
brings its schema up to date (or refuses one newer than the program), so
migrations are the engine's own business.

The guarantees every engine gives:
- `record_event` returns only once the event and its delivery are durable,
  and finds an identical event stored before instead of storing it twice;
- each queue operation is atomic on its own; a finished delivery and its
  applied status are recorded together;
- deliveries of one WooCommerce order are claimed one at a time in arrival
  order, and a claim is a lease that a stopped process gives up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..background import BackgroundLoop
from .records import (
    DeliveryRow,
    DeliveryRun,
    DeliveryState,
    EventRow,
    Job,
    NewEvent,
    Progress,
    Recorded,
)

__all__ = ["Storage"]


class Storage(Protocol):
    """What the daemon, the worker, reconciliation and the admin commands store and read."""

    # The engine's error name for the last event that could not be stored;
    # None once one was stored again.
    last_write_error: str | None

    @property
    def background_loops(self) -> list[BackgroundLoop]:
        """Work the engine runs on its own (e.g. WAL checkpoints), for `/readyz`."""
        ...

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(batches, items) committed so far: how well commits are being shared."""
        ...

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    # Events ---------------------------------------------------------------------------

    async def record_event(self, event: NewEvent) -> Recorded:
        """Store `event` and its delivery durably, or find the identical one stored before."""
        ...

    async def check_writable(self) -> None:
        """Commit a probe; raises `StorageUnavailable` if commits fail."""
        ...

    async def list_events(self, *, limit: int = 50, store: str | None = None) -> list[EventRow]:
        """The newest events first."""
        ...

    async def get_event(self, event_id: int) -> EventRow | None:
        """One event with its payload in the clear."""
        ...

    async def count_events(self) -> int: ...

    async def redact_payloads(
        self, *, received_before: float, now: float, redact: Callable[[bytes], bytes]
    ) -> int:
        """Replace each payload received before `received_before` by `redact(payload)`, once.

        Returns how many were redacted; each batch commits on its own.
        """
        ...

    # The delivery queue ---------------------------------------------------------------

    async def release_leases(self) -> int:
        """Free the leases a stopped process left, at start, where no other can hold them.

        On SQLite that is every lease (one `serve` per database); on an engine
        shared by several nodes, none: a dead node's leases run out instead.
        """
        ...

    async def claim(self, store: str, limit: int, *, now: float, lease_seconds: float) -> list[Job]:
        """Lease up to `limit` due deliveries of `store`, oldest first, one per order."""
        ...

    async def save_progress(
        self, delivery_id: int, progress: Progress, decision: dict[str, Any] | None, *, now: float
    ) -> None:
        """Record the plan a delivery is about to act on, before its first side effect."""
        ...

    async def finish(
        self,
        delivery_id: int,
        state: DeliveryState,
        outcome: str,
        *,
        now: float,
        applied_status: str | None = None,
    ) -> None:
        """End a delivery (done, skipped or dead), recording the status it applied, if any."""
        ...

    async def retry_later(self, delivery_id: int, *, at: float, error: str, now: float) -> None:
        """Give up the lease; the delivery is due again at `at`."""
        ...

    async def next_due(self) -> float | None:
        """When the earliest pending delivery is due (ignoring leases)."""
        ...

    async def applied_by(self, store: str, cryptum_order_id: str, status: str) -> int | None:
        """The delivery that applied `status` to the Cryptum order, if one did."""
        ...

    async def knows_payment(self, store: str, cryptum_order_id: str, status: str) -> bool:
        """Whether `status` of the order was applied, or a pending delivery will apply it."""
        ...

    async def requeue(
        self, *, state: DeliveryState, delivery_id: int | None = None, now: float
    ) -> int:
        """Run finished deliveries again (all in `state`, or just one) as a new generation."""
        ...

    async def requeue_event(self, event_id: int, *, now: float) -> int:
        """Run an event's delivery again, whatever state it ended in."""
        ...

    async def requeue_finished_event(self, event_id: int, *, now: float) -> int:
        """Run an event's delivery again if it ended done or skipped; a dead one stays dead."""
        ...

    # One node at a time --------------------------------------------------------------

    async def hold_task_lease(self, task: str, *, now: float, seconds: float) -> bool:
        """Take or renew this process's lease on periodic `task`; False while another holds it.

        Reconciliation and retention run only while their lease is held, so on
        an engine shared by several nodes one node at a time does each.
        """
        ...

    async def release_task_lease(self, task: str) -> None:
        """Give `task` up at once (a stopping process), for another node to take."""
        ...

    # Reading the queue ----------------------------------------------------------------

    async def list_deliveries(
        self, *, state: str | None = None, store: str | None = None, limit: int = 50
    ) -> list[DeliveryRow]:
        """Newest first."""
        ...

    async def get_delivery(self, delivery_id: int) -> DeliveryRow | None: ...

    async def delivery_runs(self, delivery_id: int) -> list[DeliveryRun]:
        """The delivery's earlier runs, oldest first (the current one is the row itself)."""
        ...

    async def finished_runs(self) -> dict[str, int]:
        """Finished runs by how they ended: the deliveries' own and every earlier run."""
        ...

    async def delivery_counts(self, states: Sequence[str] | None = None) -> dict[str, int]:
        """Deliveries per state; naming `states` spares counting every finished one."""
        ...

    async def oldest_pending(self) -> float | None:
        """When the oldest waiting delivery was created."""
        ...
