"""Reconciliation: find payments whose callback never reached the bridge.

For each store with an API key, every `reconcile.interval_seconds` (and once
at start), list the store's orders Cryptum updated within `lookback_hours`
that are confirmed, cancelled or failed. Any (order, status) the bridge has no
event for becomes an event of its own, marked `source = "reconcile"`, and is
delivered like a callback. Running again finds nothing new, and a callback
arriving late for the same payment changes nothing more: the status rules see
the order already moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from .config import Config, StoreConfig
from .cryptum import CryptumClient, CryptumOrder
from .signature import json_canonical
from .storage import Database, NewEvent, StorageUnavailable
from .upstream import UpstreamFailure

__all__ = ["RECONCILED_STATUSES", "Reconciler", "synthetic_callback"]

log = structlog.get_logger("bridge.reconcile")

RECONCILED_STATUSES = ("confirmed", "cancelled", "failed")
_PAGE_SIZE = 100
# A bound on one run, should the API keep returning full pages.
_MAX_PAGES = 100


def synthetic_callback(order: CryptumOrder, cryptum_store_id: str) -> bytes:
    """The callback Cryptum would have sent for `order`, from the API's fields only.

    Deterministic, so finding the same payment twice stores it once.
    """
    transactions = [{"protocol": t.protocol, "hash": t.hash} for t in order.transactions or ()]
    body = {
        "message": "found by reconciliation",
        "status": order.payment_status,
        "orderId": order.id,
        "ecommerceOrderId": order.ecommerce_order_id,
        "storeId": cryptum_store_id,
        "transactions": transactions,
        "updatedProducts": None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


class Reconciler:
    """Runs reconciliation for every store with an API key, until stopped."""

    def __init__(
        self,
        config: Config,
        database: Database,
        clients: dict[str, CryptumClient],
        *,
        on_enqueued: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = config.reconcile
        self._stores = [store for store in config.stores if store.name in clients]
        self._clients = clients
        self._database = database
        self._on_enqueued = on_enqueued
        self._clock = clock
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def reconfigure(self, config: Config, clients: dict[str, CryptumClient]) -> None:
        """Take new stores and API keys; the next pass uses them."""
        self._settings = config.reconcile
        self._stores = [store for store in config.stores if store.name in clients]
        self._clients = clients
        if self._stores and self._task is None:
            self.start()

    def start(self) -> None:
        if self._stores:
            self._task = asyncio.create_task(self._run(), name="reconcile")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._settings.interval_seconds)

    async def run_once(self) -> int:
        """One pass over every store; returns how many payments were enqueued."""
        enqueued = 0
        for store in self._stores:
            try:
                enqueued += await self._reconcile_store(store)
            except (UpstreamFailure, StorageUnavailable) as failure:
                log.warning("reconcile.failed", store=store.name, reason=str(failure))
        if enqueued:
            self._on_enqueued()
        return enqueued

    async def _reconcile_store(self, store: StoreConfig) -> int:
        client = self._clients[store.name]
        since = datetime.fromtimestamp(self._clock(), UTC) - timedelta(
            hours=self._settings.lookback_hours
        )
        enqueued = 0
        for page_number in range(_MAX_PAGES):
            page = await client.list_orders(
                store_id=store.cryptum_store_id,
                statuses=list(RECONCILED_STATUSES),
                since=since,
                limit=_PAGE_SIZE,
                offset=page_number * _PAGE_SIZE,
            )
            for order in page.orders:
                if await self._enqueue_if_unseen(store, order):
                    enqueued += 1
            if len(page.orders) < _PAGE_SIZE:
                break
        return enqueued

    async def _enqueue_if_unseen(self, store: StoreConfig, order: CryptumOrder) -> bool:
        if order.payment_status not in RECONCILED_STATUSES:
            return False
        if order.store_id is not None and order.store_id != store.cryptum_store_id:
            return False  # not ours, whatever the listing says
        if await self._database.has_event(store.name, order.id, order.payment_status):
            return False
        body = synthetic_callback(order, store.cryptum_store_id)
        recorded = await self._database.record_event(
            NewEvent(
                store=store.name,
                body_sha256=hashlib.sha256(json_canonical(body)).digest(),
                source="reconcile",
                signature_form=None,
                request_id=None,
                cryptum_order_id=order.id,
                woo_order_id=order.ecommerce_order_id,
                status=order.payment_status,
                payload=body,
            )
        )
        if recorded.duplicate:
            return False
        log.info(
            "reconcile.enqueued",
            store=store.name,
            event_id=recorded.event_id,
            cryptum_order_id=order.id,
            woo_order_id=order.ecommerce_order_id,
            status=order.payment_status,
        )
        return True
