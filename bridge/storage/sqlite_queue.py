"""The deliveries table as a work queue: claim with a lease, record progress, finish.

Deliveries of one WooCommerce order are claimed strictly one at a time in
arrival order: a delivery is claimable only when no earlier delivery of the
same order is still pending. A claim is a lease; work held by a process that
died is claimable again once its lease runs out (or at once, when the next
`serve` takes over the database, see `release_leases`).

A finished delivery can be run again (`replay`, `dead-letter retry`,
reconciliation): the row starts over as a new generation, and the run that
ended is kept in `delivery_runs` (by trigger, see migration 4), so its
outcome stays visible and counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from .records import DeliveryRow, DeliveryRun, DeliveryState, EventFacts, Job, Progress

__all__ = ["SqliteQueue"]

_ROW_COLUMNS = """
    d.id, d.event_id, d.store, d.woo_order_id, e.cryptum_order_id, e.status, d.state,
    d.progress, d.attempts, d.next_attempt_at, d.last_error, d.outcome, d.created_at,
    d.updated_at
"""

# A fresh start: the new run decides anew and writes its own note.
_REQUEUE = """
    state = 'pending', progress = 'new', decision = NULL, generation = generation + 1,
    attempts = 0, next_attempt_at = :now, age_from = :now, lease_until = NULL, outcome = NULL,
    last_error = NULL, updated_at = :now
"""


class SqliteQueue:
    """The queue operations of `SqliteStorage`, over its one connection; each is one statement."""

    _connection: aiosqlite.Connection

    def open_payload(self, stored: bytes) -> bytes:
        raise NotImplementedError  # `SqliteStorage` opens what its cipher sealed

    async def release_leases(self) -> int:
        """Free every lease: called by the one `serve` that owns the database, at start."""
        # Only pending deliveries are ever leased; saying so lets SQLite walk
        # their index instead of every delivery ever made.
        cursor = await self._connection.execute(
            "UPDATE deliveries SET lease_until = NULL"
            " WHERE state = 'pending' AND lease_until IS NOT NULL"
        )
        return cursor.rowcount

    async def hold_task_lease(self, task: str, *, now: float, seconds: float) -> bool:
        """Always held: one `serve` owns a SQLite database (its instance lock)."""
        return True

    async def release_task_lease(self, task: str) -> None:
        """Nothing to give up: the lease is never shared."""

    async def claim(self, store: str, limit: int, *, now: float, lease_seconds: float) -> list[Job]:
        """Lease up to `limit` due deliveries of `store`, oldest first, one per order."""
        if limit <= 0:
            return []
        claimed = await self._connection.execute_fetchall(
            """
            UPDATE deliveries
            SET lease_until = :lease_until, attempts = attempts + 1, updated_at = :now
            WHERE id IN (
                -- The index keeps a claim from sorting every pending delivery:
                -- with a long queue, the planner's own choice was O(queue).
                SELECT d.id FROM deliveries AS d INDEXED BY deliveries_pending
                WHERE d.state = 'pending' AND d.store = :store AND d.next_attempt_at <= :now
                  AND (d.lease_until IS NULL OR d.lease_until <= :now)
                  AND NOT EXISTS (
                      SELECT 1 FROM deliveries AS earlier
                      WHERE earlier.store = d.store AND earlier.woo_order_id = d.woo_order_id
                        AND earlier.state = 'pending' AND earlier.id < d.id)
                ORDER BY d.id LIMIT :limit)
            RETURNING id
            """,
            {"store": store, "now": now, "lease_until": now + lease_seconds, "limit": limit},
        )
        ids = [row[0] for row in claimed]
        if not ids:
            return []
        rows = await self._connection.execute_fetchall(
            f"""
            SELECT d.id, d.event_id, d.store, d.woo_order_id, e.cryptum_order_id, e.status,
                   e.facts, CASE WHEN e.facts IS NULL THEN e.payload END, d.attempts,
                   d.progress, d.decision, d.generation, d.age_from, e.signature_form
            FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
            WHERE d.id IN ({", ".join("?" * len(ids))}) ORDER BY d.id
            """,
            ids,
        )
        return [self._job(row) for row in rows]

    def _job(self, row: Sequence[Any]) -> Job:
        """A claimed row (as `claim` selects it) as the worker's job, its facts opened."""
        (delivery_id, event_id, store, woo_order_id, cryptum_order_id, status, facts, payload,
         attempts, progress, decision, generation, age_from, signature_form) = row  # fmt: skip
        return Job(
            delivery_id=delivery_id,
            event_id=event_id,
            store=store,
            woo_order_id=woo_order_id,
            cryptum_order_id=cryptum_order_id,
            status=status,
            facts=None if facts is None else EventFacts.from_json(self.open_payload(facts)),
            attempts=attempts,
            progress=Progress(progress),
            decision=json.loads(decision) if decision else None,
            generation=generation,
            age_from=age_from,
            signature_form=signature_form,
            payload=None if payload is None else self.open_payload(payload),
        )

    async def applied_by(self, store: str, cryptum_order_id: str, status: str) -> int | None:
        """The delivery that applied `status` of this Cryptum order to its shop order, if any.

        Applied means acted on as Cryptum's API reported it (or, for a store
        without an API key, as the signed callback did), whatever events
        reported it: one payment status is applied once.
        """
        rows = list(
            await self._connection.execute_fetchall(
                "SELECT delivery_id FROM applied_payments"
                " WHERE store = ? AND cryptum_order_id = ? AND status = ?",
                (store, cryptum_order_id, status),
            )
        )
        return int(rows[0][0]) if rows else None

    async def knows_payment(self, store: str, cryptum_order_id: str, status: str) -> bool:
        """Whether `status` of this order was applied, or a pending delivery will see to it.

        A pending delivery of the order reads its status from Cryptum's API
        when it runs, so it applies `status` too if that is where the payment is.
        """
        rows = await self._connection.execute_fetchall(
            """
            SELECT EXISTS (
                SELECT 1 FROM applied_payments
                WHERE store = :store AND cryptum_order_id = :order AND status = :status
            ) OR EXISTS (
                SELECT 1 FROM events AS e JOIN deliveries AS d ON d.event_id = e.id
                WHERE e.store = :store AND e.cryptum_order_id = :order AND d.state = 'pending'
            )
            """,
            {"store": store, "order": cryptum_order_id, "status": status},
        )
        return bool(next(iter(rows))[0])

    async def save_progress(
        self, delivery_id: int, progress: Progress, decision: dict[str, Any] | None, *, now: float
    ) -> None:
        await self._connection.execute(
            "UPDATE deliveries SET progress = ?, decision = ?, updated_at = ? WHERE id = ?",
            (progress, json.dumps(decision) if decision is not None else None, now, delivery_id),
        )

    async def finish(
        self,
        delivery_id: int,
        state: DeliveryState,
        outcome: str,
        *,
        now: float,
        applied_status: str | None = None,
    ) -> None:
        """End a delivery: `done`, `skipped` (nothing to change) or `dead`.

        `applied_status` is the Cryptum status the delivery acted on; the same
        statement records it in `applied_payments` (by trigger), so a finished
        delivery and its record cannot part.
        """
        await self._connection.execute(
            """
            UPDATE deliveries SET state = ?, outcome = ?, lease_until = NULL, updated_at = ?,
                                  applied_status = coalesce(?, applied_status)
            WHERE id = ?
            """,
            (state, outcome, now, applied_status, delivery_id),
        )

    async def retry_later(self, delivery_id: int, *, at: float, error: str, now: float) -> None:
        await self._connection.execute(
            """
            UPDATE deliveries SET next_attempt_at = ?, last_error = ?, lease_until = NULL,
                                  updated_at = ?
            WHERE id = ?
            """,
            (at, error, now, delivery_id),
        )

    async def next_due(self) -> float | None:
        """When the earliest pending delivery is due (ignoring leases)."""
        rows = await self._connection.execute_fetchall(
            "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'"
        )
        due: float | None = next(iter(rows))[0]
        return due

    async def requeue(
        self, *, state: DeliveryState, delivery_id: int | None = None, now: float
    ) -> int:
        """Run finished deliveries again (all in `state`, or just one) as a new generation."""
        where = "state = :state" + (" AND id = :id" if delivery_id is not None else "")
        cursor = await self._connection.execute(
            f"UPDATE deliveries SET {_REQUEUE} WHERE {where}",
            {"now": now, "state": state, "id": delivery_id},
        )
        return cursor.rowcount

    async def requeue_event(self, event_id: int, *, now: float) -> int:
        """Run an event's delivery again, whatever state it ended in."""
        cursor = await self._connection.execute(
            f"UPDATE deliveries SET {_REQUEUE} WHERE event_id = :event AND state != 'pending'",
            {"now": now, "event": event_id},
        )
        return cursor.rowcount

    async def requeue_finished_event(self, event_id: int, *, now: float) -> int:
        """Run an event's delivery again if it ended done or skipped; a dead one stays dead."""
        cursor = await self._connection.execute(
            f"UPDATE deliveries SET {_REQUEUE}"
            " WHERE event_id = :event AND state IN ('done', 'skipped')",
            {"now": now, "event": event_id},
        )
        return cursor.rowcount

    async def delivery_runs(self, delivery_id: int) -> list[DeliveryRun]:
        """The delivery's earlier runs, oldest first (the current one is the row itself)."""
        rows = await self._connection.execute_fetchall(
            """
            SELECT generation, state, outcome, last_error, attempts, started_at, finished_at,
                   requeued_at
            FROM delivery_runs WHERE delivery_id = ? ORDER BY generation
            """,
            (delivery_id,),
        )
        return [DeliveryRun(*row) for row in rows]

    async def finished_runs(self) -> dict[str, int]:
        """Finished runs by how they ended: the deliveries' own and every earlier run."""
        rows = await self._connection.execute_fetchall(
            """
            SELECT state, sum(count) FROM (
                SELECT state, count(*) AS count FROM deliveries
                WHERE state != 'pending' GROUP BY state
                UNION ALL
                SELECT state, count(*) AS count FROM delivery_runs GROUP BY state
            ) GROUP BY state
            """
        )
        return {state: int(count) for state, count in rows}

    async def list_deliveries(
        self, *, state: str | None = None, store: str | None = None, limit: int = 50
    ) -> list[DeliveryRow]:
        """Newest first."""
        conditions, parameters = [], []
        for column, value in (("d.state", state), ("d.store", store)):
            if value is not None:
                conditions.append(f"{column} = ?")
                parameters.append(value)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._connection.execute_fetchall(
            f"""
            SELECT {_ROW_COLUMNS} FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
            {where} ORDER BY d.id DESC LIMIT ?
            """,
            [*parameters, limit],
        )
        return [DeliveryRow(*row) for row in rows]

    async def get_delivery(self, delivery_id: int) -> DeliveryRow | None:
        rows = list(
            await self._connection.execute_fetchall(
                f"""
                SELECT {_ROW_COLUMNS} FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
                WHERE d.id = ?
                """,
                (delivery_id,),
            )
        )
        return DeliveryRow(*rows[0]) if rows else None

    async def oldest_pending(self) -> float | None:
        """When the oldest waiting delivery was created."""
        rows = await self._connection.execute_fetchall(
            "SELECT min(created_at) FROM deliveries WHERE state = 'pending'"
        )
        oldest: float | None = next(iter(rows))[0]
        return oldest

    async def delivery_counts(self, states: Sequence[str] | None = None) -> dict[str, int]:
        """Deliveries per state; naming `states` spares counting every finished one."""
        if states is None:
            rows = await self._connection.execute_fetchall(
                "SELECT state, count(*) FROM deliveries GROUP BY state"
            )
        else:
            placeholders = ", ".join("?" * len(states))
            rows = await self._connection.execute_fetchall(
                f"SELECT state, count(*) FROM deliveries WHERE state IN ({placeholders})"
                " GROUP BY state",
                tuple(states),
            )
        return {state: count for state, count in rows}
