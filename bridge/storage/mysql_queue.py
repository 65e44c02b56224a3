"""The deliveries table as a work queue shared by every node: leases, progress, finishing.

As on SQLite, only the oldest pending delivery of a WooCommerce order can be
claimed, so one order's deliveries run one at a time in arrival order, on
whichever node. A claim locks the rows it takes (`FOR UPDATE SKIP LOCKED`):
nodes claiming at the same moment pass over each other's rows instead of
waiting or taking them twice, and the lease committed with the claim keeps
them off every other node until it runs out. A node that dies holds its
leases until then; another node finishes those deliveries, resuming any plan
saved before its first side effect, so nothing is noted or changed twice.

What SQLite's triggers do (a finished run kept in `delivery_runs`, an
applied status in `applied_payments`) is done here by the statements of the
same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .mysql_connection import Cursor, MysqlPool
from .records import DeliveryRow, DeliveryRun, DeliveryState, Job, Progress
from .sealing import Sealing

__all__ = ["MysqlQueue"]

_ROW_COLUMNS = """
    d.id, d.event_id, d.store, d.woo_order_id, e.cryptum_order_id, e.status, d.state,
    d.progress, d.attempts, d.next_attempt_at, d.last_error, d.outcome, d.created_at,
    d.updated_at
"""

_REQUEUE = """
    state = 'pending', progress = 'new', decision = NULL, generation = generation + 1,
    attempts = 0, next_attempt_at = %(now)s, age_from = %(now)s, lease_until = NULL,
    outcome = NULL, last_error = NULL, updated_at = %(now)s
"""


class MysqlQueue:
    """The queue operations of `MysqlStorage`; each one transaction."""

    _pool: MysqlPool
    _sealing: Sealing

    async def release_leases(self) -> int:
        """Nothing: the other nodes' leases are theirs; a dead node's run out on their own."""
        return 0

    async def claim(self, store: str, limit: int, *, now: float, lease_seconds: float) -> list[Job]:
        """Lease up to `limit` due deliveries of `store`, oldest first, one per order."""
        if limit <= 0:
            return []

        async def work(cursor: Cursor) -> list[Job]:
            await cursor.execute(
                """
                SELECT d.id FROM deliveries AS d
                WHERE d.state = 'pending' AND d.store = %(store)s
                  AND d.next_attempt_at <= %(now)s
                  AND (d.lease_until IS NULL OR d.lease_until <= %(now)s)
                  AND NOT EXISTS (
                      SELECT 1 FROM deliveries AS earlier
                      WHERE earlier.store = d.store AND earlier.woo_order_id = d.woo_order_id
                        AND earlier.state = 'pending' AND earlier.id < d.id)
                ORDER BY d.id LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
                """,
                {"store": store, "now": now, "limit": limit},
            )
            ids = [int(row[0]) for row in await cursor.fetchall()]
            if not ids:
                return []
            placeholders = ", ".join(["%s"] * len(ids))
            await cursor.execute(
                "UPDATE deliveries SET lease_until = %s, attempts = attempts + 1, updated_at = %s"
                f" WHERE id IN ({placeholders})",
                [now + lease_seconds, now, *ids],
            )
            await cursor.execute(
                f"""
                SELECT d.id, d.event_id, d.store, d.woo_order_id, e.cryptum_order_id, e.status,
                       e.facts, CASE WHEN e.facts IS NULL THEN e.payload END, d.attempts,
                       d.progress, d.decision, d.generation, d.age_from, e.signature_form
                FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
                WHERE d.id IN ({placeholders}) ORDER BY d.id
                """,
                ids,
            )
            return [self._job(row) for row in await cursor.fetchall()]

        return await self._pool.transaction(work)

    def _job(self, row: Sequence[Any]) -> Job:
        (delivery_id, event_id, store, woo_order_id, cryptum_order_id, status, facts, payload,
         attempts, progress, decision, generation, age_from, signature_form) = row  # fmt: skip
        return Job(
            delivery_id=int(delivery_id),
            event_id=int(event_id),
            store=store,
            woo_order_id=woo_order_id,
            cryptum_order_id=cryptum_order_id,
            status=status,
            facts=None if facts is None else self._sealing.facts(bytes(facts)),
            attempts=int(attempts),
            progress=Progress(progress),
            decision=json.loads(decision) if decision else None,
            generation=int(generation),
            age_from=float(age_from),
            signature_form=signature_form,
            payload=None if payload is None else self._sealing.open(bytes(payload)),
        )

    async def applied_by(self, store: str, cryptum_order_id: str, status: str) -> int | None:
        """The delivery that applied `status` of this Cryptum order to its shop order, if any."""

        async def work(cursor: Cursor) -> int | None:
            await cursor.execute(
                "SELECT delivery_id FROM applied_payments"
                " WHERE store = %s AND cryptum_order_id = %s AND status = %s",
                (store, cryptum_order_id, status),
            )
            row = await cursor.fetchone()
            return int(row[0]) if row else None

        return await self._pool.read(work)

    async def knows_payment(self, store: str, cryptum_order_id: str, status: str) -> bool:
        """Whether `status` of this order was applied, or a pending delivery will see to it."""

        async def work(cursor: Cursor) -> bool:
            await cursor.execute(
                """
                SELECT EXISTS (
                    SELECT 1 FROM applied_payments
                    WHERE store = %(store)s AND cryptum_order_id = %(order)s
                      AND status = %(status)s
                ) OR EXISTS (
                    SELECT 1 FROM events AS e JOIN deliveries AS d ON d.event_id = e.id
                    WHERE e.store = %(store)s AND e.cryptum_order_id = %(order)s
                      AND d.state = 'pending'
                )
                """,
                {"store": store, "order": cryptum_order_id, "status": status},
            )
            row = await cursor.fetchone()
            return bool(row[0])

        return await self._pool.read(work)

    async def save_progress(
        self, delivery_id: int, progress: Progress, decision: dict[str, Any] | None, *, now: float
    ) -> None:
        plan = json.dumps(decision) if decision is not None else None
        await self._execute(
            "UPDATE deliveries SET progress = %s, decision = %s, updated_at = %s WHERE id = %s",
            (str(progress), plan, now, delivery_id),
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
        """End a delivery; the status it applied is recorded in the same transaction."""

        async def work(cursor: Cursor) -> None:
            await cursor.execute(
                """
                UPDATE deliveries SET state = %s, outcome = %s, lease_until = NULL,
                                      updated_at = %s,
                                      applied_status = coalesce(%s, applied_status)
                WHERE id = %s
                """,
                (str(state), outcome, now, applied_status, delivery_id),
            )
            if applied_status is not None:
                # The first delivery to apply a status keeps the record, as on SQLite.
                await cursor.execute(
                    """
                    INSERT INTO applied_payments
                        (store, cryptum_order_id, status, delivery_id, applied_at)
                    SELECT d.store, e.cryptum_order_id, %s, d.id, %s
                    FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
                    WHERE d.id = %s
                    ON DUPLICATE KEY UPDATE delivery_id = applied_payments.delivery_id
                    """,
                    (applied_status, now, delivery_id),
                )

        await self._pool.transaction(work)

    async def retry_later(self, delivery_id: int, *, at: float, error: str, now: float) -> None:
        await self._execute(
            "UPDATE deliveries SET next_attempt_at = %s, last_error = %s, lease_until = NULL,"
            " updated_at = %s WHERE id = %s",
            (at, error, now, delivery_id),
        )

    async def next_due(self) -> float | None:
        """When the earliest pending delivery is due (ignoring leases)."""
        due = await self._scalar(
            "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'"
        )
        return None if due is None else float(due)

    async def requeue(
        self, *, state: DeliveryState, delivery_id: int | None = None, now: float
    ) -> int:
        """Run finished deliveries again (all in `state`, or just one) as a new generation."""
        where = "state = %(state)s" + (" AND id = %(id)s" if delivery_id is not None else "")
        return await self._requeue(where, {"state": str(state), "id": delivery_id}, now)

    async def requeue_event(self, event_id: int, *, now: float) -> int:
        """Run an event's delivery again, whatever state it ended in."""
        return await self._requeue(
            "event_id = %(event)s AND state != 'pending'", {"event": event_id}, now
        )

    async def requeue_finished_event(self, event_id: int, *, now: float) -> int:
        """Run an event's delivery again if it ended done or skipped; a dead one stays dead."""
        return await self._requeue(
            "event_id = %(event)s AND state IN ('done', 'skipped')", {"event": event_id}, now
        )

    async def _requeue(self, where: str, parameters: dict[str, Any], now: float) -> int:
        """Keep each matching run in `delivery_runs`, then start it over, in one transaction."""

        async def work(cursor: Cursor) -> int:
            await cursor.execute(
                f"SELECT id FROM deliveries WHERE {where} ORDER BY id FOR UPDATE", parameters
            )
            ids = [int(row[0]) for row in await cursor.fetchall()]
            if not ids:
                return 0
            # Ids the database just gave: integers, safe to write into the statement.
            chosen = ", ".join(str(delivery_id) for delivery_id in ids)
            await cursor.execute(
                f"""
                INSERT INTO delivery_runs
                    (delivery_id, generation, state, outcome, last_error, attempts,
                     applied_status, started_at, finished_at, requeued_at)
                SELECT id, generation, state, outcome, last_error, attempts, applied_status,
                       age_from, updated_at, %(now)s
                FROM deliveries WHERE id IN ({chosen})
                ON DUPLICATE KEY UPDATE delivery_id = delivery_runs.delivery_id
                """,
                {"now": now},
            )
            await cursor.execute(
                f"UPDATE deliveries SET {_REQUEUE} WHERE id IN ({chosen})", {"now": now}
            )
            return len(ids)

        return await self._pool.transaction(work)

    async def delivery_runs(self, delivery_id: int) -> list[DeliveryRun]:
        """The delivery's earlier runs, oldest first (the current one is the row itself)."""
        rows = await self._rows(
            """
            SELECT generation, state, outcome, last_error, attempts, started_at, finished_at,
                   requeued_at
            FROM delivery_runs WHERE delivery_id = %s ORDER BY generation
            """,
            (delivery_id,),
        )
        return [DeliveryRun(*row) for row in rows]

    async def finished_runs(self) -> dict[str, int]:
        """Finished runs by how they ended: the deliveries' own and every earlier run."""
        rows = await self._rows(
            """
            SELECT state, sum(count) FROM (
                SELECT state, count(*) AS count FROM deliveries
                WHERE state != 'pending' GROUP BY state
                UNION ALL
                SELECT state, count(*) AS count FROM delivery_runs GROUP BY state
            ) AS runs GROUP BY state
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
                conditions.append(f"{column} = %s")
                parameters.append(value)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._rows(
            f"""
            SELECT {_ROW_COLUMNS} FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
            {where} ORDER BY d.id DESC LIMIT %s
            """,
            [*parameters, limit],
        )
        return [_delivery_row(row) for row in rows]

    async def get_delivery(self, delivery_id: int) -> DeliveryRow | None:
        rows = await self._rows(
            f"""
            SELECT {_ROW_COLUMNS} FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
            WHERE d.id = %s
            """,
            (delivery_id,),
        )
        return _delivery_row(rows[0]) if rows else None

    async def oldest_pending(self) -> float | None:
        """When the oldest waiting delivery was created."""
        oldest = await self._scalar(
            "SELECT min(created_at) FROM deliveries WHERE state = 'pending'"
        )
        return None if oldest is None else float(oldest)

    async def delivery_counts(self, states: Sequence[str] | None = None) -> dict[str, int]:
        """Deliveries per state; naming `states` spares counting every finished one."""
        if states is None:
            rows = await self._rows("SELECT state, count(*) FROM deliveries GROUP BY state")
        elif not states:
            return {}  # MySQL has no empty `IN ()`
        else:
            placeholders = ", ".join(["%s"] * len(states))
            rows = await self._rows(
                f"SELECT state, count(*) FROM deliveries WHERE state IN ({placeholders})"
                " GROUP BY state",
                [str(state) for state in states],
            )
        return {state: int(count) for state, count in rows}

    # One statement, as a transaction of its own -------------------------------------

    async def _execute(self, statement: str, parameters: Sequence[Any] = ()) -> int:
        async def work(cursor: Cursor) -> int:
            return int(await cursor.execute(statement, parameters))

        return await self._pool.transaction(work)

    async def _rows(self, query: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def work(cursor: Cursor) -> list[tuple[Any, ...]]:
            await cursor.execute(query, parameters)
            return list(await cursor.fetchall())

        return await self._pool.read(work)

    async def _scalar(self, query: str) -> Any:
        """The one value of an aggregate query (which always gives one row)."""
        return (await self._rows(query))[0][0]


def _delivery_row(row: Sequence[Any]) -> DeliveryRow:
    (delivery_id, event_id, store, woo_order_id, cryptum_order_id, status, state, progress,
     attempts, next_attempt_at, last_error, outcome, created_at, updated_at) = row  # fmt: skip
    return DeliveryRow(
        id=int(delivery_id),
        event_id=int(event_id),
        store=store,
        woo_order_id=woo_order_id,
        cryptum_order_id=cryptum_order_id,
        status=status,
        state=state,
        progress=Progress(progress),
        attempts=int(attempts),
        next_attempt_at=float(next_attempt_at),
        last_error=last_error,
        outcome=outcome,
        created_at=float(created_at),
        updated_at=float(updated_at),
    )
