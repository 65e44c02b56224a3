"""Reconciliation: find payments whose callback never reached the bridge.

For each store with an API key, every `reconcile.interval_seconds` (and once
at start), list the store's orders Cryptum updated within `lookback_hours`
that are confirmed, cancelled or failed: one query per status, since the API
takes one, each walked page by page. What decides is what was applied, not
what was seen: an (order, status) that no delivery applied, and that no
pending delivery of the order will apply, becomes an event of its own, marked
`source = "reconcile"`, and is delivered like a callback. So a callback
whose delivery found the API lagging and ended without applying anything
does not hide the payment once the API settles. Running again finds nothing
new (the event is derived from the API's fields, so it is stored
once), and a callback arriving late for an applied status changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from .background import BackgroundLoop
from .config import Config, StoreConfig
from .cryptum import CryptumClient
from .cryptum_models import ListedOrder
from .payload import event_key, is_woo_order_id
from .signature import json_canonical
from .storage import EventFacts, NewEvent, Storage, StorageUnavailable
from .upstream import UpstreamFailure

__all__ = [
    "FOUND_MESSAGE",
    "RECONCILED_STATUSES",
    "RECONCILE_TASK",
    "Reconciler",
    "found_event",
]

log = structlog.get_logger("bridge.reconcile")

RECONCILED_STATUSES = ("confirmed", "cancelled", "failed")
# The name of reconciliation's lease in the storage (`Storage.hold_task_lease`).
RECONCILE_TASK = "reconcile"
_LEASE_MARGIN_SECONDS = 60
# The message a found payment is noted with, where a callback has Cryptum's own.
FOUND_MESSAGE = "found by reconciliation"


def found_event(order: ListedOrder, status: str, *, store: str, cryptum_store_id: str) -> NewEvent:
    """The event of a payment the API lists in `status`, from the API's fields alone.

    Deterministic, so finding the same payment twice stores it once. A listed
    order carries no transactions: the delivery reads the order for them.
    """
    found = {
        "orderId": order.id,
        "ecommerceOrderId": order.ecommerce_order_id,
        "storeId": cryptum_store_id,
        "status": status,
    }
    payload = json.dumps(found).encode()
    return NewEvent(
        store=store,
        body_sha256=event_key(json_canonical(payload)),
        source="reconcile",
        signature_form=None,
        request_id=None,
        cryptum_order_id=order.id,
        woo_order_id=order.ecommerce_order_id,
        status=status,
        payload=payload,
        facts=EventFacts(message=FOUND_MESSAGE),
    )


class Reconciler:
    """Runs reconciliation for every store with an API key, until stopped."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        clients: dict[str, CryptumClient],
        *,
        on_enqueued: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = config.reconcile
        self._stores = [store for store in config.stores if store.name in clients]
        self._clients = clients
        self._storage = storage
        self._on_enqueued = on_enqueued
        self._clock = clock
        self.loop = BackgroundLoop("reconcile", self._step, failed_event="reconcile.crashed")
        # Whether the app runs its loops (`start`); an app driven by hand does not.
        self._started = False

    def reconfigure(self, config: Config, clients: dict[str, CryptumClient]) -> None:
        """Take new stores and API keys; the next pass uses them."""
        self._settings = config.reconcile
        self._stores = [store for store in config.stores if store.name in clients]
        self._clients = clients
        if self._started:
            self.start()  # a store may have its first API key now

    def start(self) -> None:
        """Pass now, then every `interval_seconds`; nothing while no store has an API key."""
        self._started = True
        if self._stores and not self.loop.running:
            self.loop.start()

    async def stop(self) -> None:
        """Stop at once, even mid-pass: a pass cut short loses nothing, the next one redoes it.

        Another node (on a shared storage) takes the work over at its next try.
        """
        await self.loop.stop()
        if self._started:
            with contextlib.suppress(StorageUnavailable):
                await self._storage.release_task_lease(RECONCILE_TASK)

    async def _step(self) -> float:
        await self.run_once()
        return self._settings.interval_seconds

    async def run_once(self) -> int:
        """One pass over every store; returns how many payments were enqueued.

        Only on the node that holds reconciliation's lease: on a storage that
        several nodes share, one of them lists Cryptum's orders, not each.
        Held a little over two intervals, so a dead node's turn passes on soon.
        """
        held = await self._storage.hold_task_lease(
            RECONCILE_TASK,
            now=self._clock(),
            seconds=2 * self._settings.interval_seconds + _LEASE_MARGIN_SECONDS,
        )
        if not held:
            log.debug("reconcile.another_node")
            return 0
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
        for status in RECONCILED_STATUSES:
            async for order in client.orders_in_status(
                store_id=store.cryptum_store_id, payment_status=status, since=since
            ):
                if await self._enqueue_if_unapplied(store, order, status):
                    enqueued += 1
        return enqueued

    async def _enqueue_if_unapplied(
        self, store: StoreConfig, order: ListedOrder, status: str
    ) -> bool:
        if order.payment_status is not None and order.payment_status != status:
            return False  # moved since the query: the next pass lists it where it is now
        if order.store_id is not None and order.store_id != store.cryptum_store_id:
            return False  # not ours, whatever the listing says
        if not is_woo_order_id(order.ecommerce_order_id):
            # Not an order of a WooCommerce shop: nothing the bridge could apply.
            log.warning("reconcile.unusable_order", store=store.name, cryptum_order_id=order.id)
            return False
        if await self._storage.knows_payment(store.name, order.id, status):
            return False
        found = found_event(
            order, status, store=store.name, cryptum_store_id=store.cryptum_store_id
        )
        recorded = await self._storage.record_event(found)
        if recorded.duplicate:
            # Found before, and its delivery ended without applying this
            # status (the API moved on meanwhile, and has come back to it):
            # run it again. One that ended dead waits for an admin.
            requeued = await self._storage.requeue_finished_event(
                recorded.event_id, now=self._clock()
            )
            if not requeued:
                return False
        log.info(
            "reconcile.enqueued",
            store=store.name,
            event_id=recorded.event_id,
            cryptum_order_id=order.id,
            woo_order_id=order.ecommerce_order_id,
            status=status,
        )
        return True
