"""A database that looks like a shop's after years of callbacks, for benchmarks.

    python bench/prefill.py DB_PATH [--events 1000000] [--days 730] [--seed 1]

Creates DB_PATH with the bridge's own schema (`SqliteStorage.open` runs the
migrations, as `serve` would) and fills it with that many past events spread
over `--days` up to an hour ago: unique callback bodies shaped like the ones
bench/ingest.py sends, hashed the way the bridge dedupes them, each with its
delivery finished (paid, moved, skipped, a few dead-lettered) and its plan
stored, and payloads older than the retention period already redacted. So a
`serve` started on it finds no work left over, as on a real shop, and only
the size of the tables differs from an empty database.

The fill runs in one transaction with no journal and no fsync (a crash only
loses a scratch file), then the file is put back in WAL mode and renamed to
DB_PATH, so a half-built file is never mistaken for a finished one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from bridge.config import StorageConfig, StoreConfig
from bridge.cryptum_models import ListedOrder
from bridge.delivery_plan import PaymentFacts, note_marker, plan_delivery
from bridge.middlewares import new_request_id
from bridge.payload import event_key
from bridge.reconcile import FOUND_MESSAGE, found_event
from bridge.retention import redact_payload
from bridge.signature import json_canonical
from bridge.status_rules import StatusRules
from bridge.storage import EventFacts, SqliteStorage
from bridge.woocommerce_errors import classify
from bridge.woocommerce_models import WooOrder

__all__ = ["BENCH_SHOP", "Prefilled", "Shop", "prefill"]

# The product's defaults, so the history matches what `serve` expects of it.
RETENTION_DAYS: int = StorageConfig.model_fields["retention_days"].default
GATEWAY: str = StoreConfig.model_fields["payment_method"].default

# Past orders are numbered apart from the ones bench/shop_server.py serves
# (1000 to 1999), so new callbacks never share an order with the history. The
# ids are TEXT in the indexes: numbers starting with "1" ("100000") would sort
# among the live ones and scatter their inserts over the index, where a real
# shop's new orders, numbered on from its past ones, sit side by side.
FIRST_PAST_ORDER = 2_000_000
# Rows per executemany: big enough to amortise the calls, small enough that a
# chunk's deliveries are still in SQLite's cache when they are finished.
CHUNK = 20_000

# Shares of the history; the rest of the final statuses are "confirmed".
PENDING_FIRST = 0.25  # a "pending" callback before the final one
CANCELLED = 0.03
FAILED = 0.02
RECONCILED = 0.01  # the final status found by reconciliation, not a callback
DEAD = 0.005  # dead-lettered: the order was gone from WooCommerce
RETRIED = 0.03  # done after a few transient WooCommerce errors

MESSAGES = {
    "pending": "Payment is being processed",
    "confirmed": "Payment was successful",
    "cancelled": "Payment was cancelled",
    "failed": "Payment failed",
}


@dataclass(frozen=True, slots=True)
class Shop:
    """The store the history belongs to, as named in the bridge's config."""

    store: str
    cryptum_store_id: str


BENCH_SHOP = Shop(store="bench", cryptum_store_id="bench-store-0001")


@dataclass(frozen=True, slots=True)
class Prefilled:
    path: Path
    events: int
    seconds: float
    size_bytes: int
    deliveries: dict[str, int]


_INSERT_EVENT = """
    INSERT INTO events (id, store, body_sha256, received_at, source, signature_form,
                        request_id, cryptum_order_id, woo_order_id, status, payload, redacted_at,
                        facts)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# The events' trigger has just added each delivery as pending; end it the way
# the delivery worker would have.
_FINISH_DELIVERY = """
    UPDATE deliveries
    SET state = ?, progress = ?, decision = ?, attempts = ?, next_attempt_at = ?,
        last_error = ?, outcome = ?, updated_at = ?, applied_status = ?
    WHERE event_id = ?
"""

EventRow = tuple[object, ...]
DeliveryUpdate = tuple[object, ...]


class _History:
    """Draws the shop's past: the same seed gives the same orders, bodies and outcomes."""

    def __init__(self, shop: Shop, *, seed: int, now: float) -> None:
        self._shop = shop
        self._random = random.Random(seed)
        self._now = now
        self._retention_seconds = RETENTION_DAYS * 86400
        self._rules = StatusRules()
        self._transient = classify(503, None, None, auth_method="basic").reason
        self._gone = classify(
            404, "woocommerce_rest_shop_order_invalid_id", None, auth_method="basic"
        ).reason

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _final_status(self) -> str:
        draw = self._random.random()
        if draw < CANCELLED:
            return "cancelled"
        if draw < CANCELLED + FAILED:
            return "failed"
        return "confirmed"

    def events(
        self, count: int, *, start: float, end: float
    ) -> Iterator[tuple[EventRow, DeliveryUpdate]]:
        """`count` events in arrival order, evenly spread from `start` to `end`, with jitter."""
        step = (end - start) / count
        event_id = 0
        order_number = FIRST_PAST_ORDER
        while event_id < count:
            woo_order_id = str(order_number)
            order_number += 1
            cryptum_order_id = self._uuid()
            final = self._final_status()
            statuses = ["pending", final] if self._random.random() < PENDING_FIRST else [final]
            for status in statuses[: count - event_id]:
                event_id += 1
                received_at = start + step * (event_id - 1 + self._random.random())
                yield self._event(event_id, received_at, status, cryptum_order_id, woo_order_id)

    def _body(self, status: str, cryptum_order_id: str, woo_order_id: str, tx_hash: str) -> bytes:
        """A callback as Cryptum sends it: the shape bench/ingest.py's load uses."""
        return json.dumps(
            {
                "message": MESSAGES[status],
                "status": status,
                "orderId": cryptum_order_id,
                "ecommerceOrderId": woo_order_id,
                "storeId": self._shop.cryptum_store_id,
                "transactions": [{"protocol": "POLYGON", "hash": tx_hash}],
                "updatedProducts": None,
            }
        ).encode()

    def _event(
        self,
        event_id: int,
        received_at: float,
        status: str,
        cryptum_order_id: str,
        woo_order_id: str,
    ) -> tuple[EventRow, DeliveryUpdate]:
        tx_hash = f"0x{self._random.getrandbits(256):064x}"
        reconciled = status != "pending" and self._random.random() < RECONCILED
        if reconciled:
            order = ListedOrder.model_validate(
                {"id": cryptum_order_id, "ecommerceOrderId": woo_order_id}
            )
            body = found_event(
                order, status, store=self._shop.store, cryptum_store_id=self._shop.cryptum_store_id
            ).payload
            source, signature_form, request_id = "reconcile", None, None
            message = FOUND_MESSAGE
        else:
            body = self._body(status, cryptum_order_id, woo_order_id, tx_hash)
            source, signature_form, request_id = "callback", "json", new_request_id()
            message = MESSAGES[status]

        transactions = () if reconciled else (("POLYGON", tx_hash),)
        stored_facts = EventFacts(transactions=transactions, message=message)
        payload, redacted_at = body, None
        if received_at < self._now - self._retention_seconds:
            # The retention job runs every 6 h and would have cut it down by now.
            payload = redact_payload(body)
            stored_facts = stored_facts.redacted()
            redacted_at = min(
                received_at + self._retention_seconds + self._random.random() * 6 * 3600,
                self._now,
            )
        event = (
            event_id,
            self._shop.store,
            # The dedupe key, computed as the callback handler does.
            event_key(json_canonical(body)),
            received_at,
            source,
            signature_form,
            request_id,
            cryptum_order_id,
            woo_order_id,
            status,
            payload,
            redacted_at,
            stored_facts.to_json(),
        )
        facts = PaymentFacts(
            status=status,
            cryptum_order_id=cryptum_order_id,
            transactions=(("POLYGON", tx_hash),),
            message=message,
        )
        # The trigger gives the n-th event of a new database the n-th delivery.
        return event, self._delivery(event_id, received_at, facts, woo_order_id)

    def _delivery(
        self, delivery_id: int, received_at: float, facts: PaymentFacts, woo_order_id: str
    ) -> DeliveryUpdate:
        """The finished delivery, with the plan and outcome the worker would have stored."""
        attempts, last_error, last_try = 1, None, received_at
        if self._random.random() < RETRIED:
            attempts = self._random.randint(2, 4)
            last_error = self._transient
            last_try = received_at + 30 * 2**attempts * self._random.random()
        updated_at = last_try + 0.3 + self._random.random()  # three requests to the shop

        if facts.status != "pending" and self._random.random() < DEAD:
            # Failed at the first read of the order, before any plan.
            state, progress, decision, outcome = "dead", "new", None, self._gone
            applied = None
        else:
            order = WooOrder(
                id=int(woo_order_id),
                status="pending",
                total="49.90",
                currency="USD",
                payment_method=GATEWAY,
            )
            plan = plan_delivery(
                facts,
                order,
                gateway=GATEWAY,
                rules=self._rules,
                marker=note_marker(delivery_id, 1),
            )
            # As the worker's `_finish`: a plan that changes or says something is "done".
            acted = plan.changes is not None or plan.note is not None
            state = "done" if acted else "skipped"
            progress = "acting" if acted else "new"
            decision = json.dumps(plan.to_json()) if acted else None
            outcome = f"{plan.kind}: {plan.reason}"
            # The trigger records it in applied_payments, as for the worker's finish.
            applied = facts.status
        return (
            state,
            progress,
            decision,
            attempts,
            last_try,
            last_error,
            outcome,
            updated_at,
            applied,
            delivery_id,
        )


async def _create_schema(path: Path) -> None:
    """Create and migrate the file exactly as `serve` does when it opens a new database."""
    database = await SqliteStorage.open(path)
    await database.close()


def _discard(path: Path) -> None:
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


def _fill(connection: sqlite3.Connection, rows: Iterator[tuple[EventRow, DeliveryUpdate]]) -> None:
    # Unsafe settings for the fill only: the file is scratch until renamed.
    connection.execute("PRAGMA journal_mode = OFF")
    connection.execute("PRAGMA synchronous = OFF")
    # Room for the random-keyed indexes (body hash, Cryptum order id) to stay cached.
    connection.execute("PRAGMA cache_size = -524288")
    connection.execute("BEGIN")
    while chunk := list(islice(rows, CHUNK)):
        connection.executemany(_INSERT_EVENT, [event for event, _ in chunk])
        connection.executemany(_FINISH_DELIVERY, [delivery for _, delivery in chunk])
    connection.execute("COMMIT")


def _check(connection: sqlite3.Connection, events: int) -> dict[str, int]:
    """Every event has its delivery, finished, with the id its plan's note names."""
    stored = connection.execute("SELECT count(*), max(id) FROM events").fetchone()
    owed = connection.execute("SELECT count(*), max(id) FROM deliveries").fetchone()
    states = dict(connection.execute("SELECT state, count(*) FROM deliveries GROUP BY state"))
    if stored != (events, events) or owed != (events, events) or states.get("pending"):
        raise RuntimeError(f"inconsistent prefill: events {stored}, deliveries {owed}, {states}")
    return states


def prefill(
    path: Path,
    events: int,
    *,
    shop: Shop = BENCH_SHOP,
    days: float = 730.0,
    seed: int = 1,
) -> Prefilled:
    """Create `path` holding `events` past events of `shop`; it must not exist yet."""
    if events < 1:
        raise ValueError("events must be at least 1")
    if path.exists():
        raise FileExistsError(f"{path} exists; prefill only creates new databases")
    started = time.perf_counter()
    now = time.time()
    scratch = path.with_name(path.name + ".partial")
    _discard(scratch)
    try:
        asyncio.run(_create_schema(scratch))
        history = _History(shop, seed=seed, now=now)
        connection = sqlite3.connect(scratch, isolation_level=None)
        try:
            _fill(connection, history.events(events, start=now - days * 86400, end=now - 3600))
            states = _check(connection, events)
            # Back to what `serve` sets up, so it finds the file as it left it.
            connection.execute("PRAGMA journal_mode = WAL")
        finally:
            connection.close()
        scratch.rename(path)
    except BaseException:
        _discard(scratch)
        raise
    return Prefilled(
        path=path,
        events=events,
        seconds=time.perf_counter() - started,
        size_bytes=path.stat().st_size,
        deliveries=states,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, metavar="DB_PATH")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=730.0, help="how far back the history goes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", default=BENCH_SHOP.store, help="the store's name in the config")
    parser.add_argument("--store-id", default=BENCH_SHOP.cryptum_store_id)
    arguments = parser.parse_args()

    if arguments.path.exists():
        parser.error(f"{arguments.path} exists; prefill only creates new databases")
    result = prefill(
        arguments.path,
        arguments.events,
        shop=Shop(arguments.store, arguments.store_id),
        days=arguments.days,
        seed=arguments.seed,
    )
    print(
        f"{result.events} events in {result.seconds:.1f} s"
        f" ({result.events / result.seconds:,.0f}/s), {result.size_bytes / 2**20:,.0f} MiB,"
        f" deliveries {result.deliveries}"
    )


if __name__ == "__main__":
    main()
