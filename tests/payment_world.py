"""A bridge, a simulated Cryptum and a simulated shop in one process, on a virtual clock.

The bridge is the real application (`create_app`) serving on 127.0.0.1 with
its background loops off: the world drives them, so hours of backoff,
Cryptum lag and reconciliation pass in milliseconds with nothing asleep.
Cryptum's API and the shop are the simulators, over real HTTP. The shop
keeps real time, because WooCommerce checks OAuth timestamps against its
own clock; only the bridge and Cryptum live on the virtual one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bridge.app import create_app
from bridge.app_keys import RECONCILER, WORKER
from bridge.config import parse_config
from bridge.delivery import DeliveryWorker
from bridge.reconcile import Reconciler
from bridge.signature import sign
from bridge_simulators.cryptum import CryptumSimulator
from bridge_simulators.woocommerce import WooCommerceSimulator

from support import CONFIGURED_SECRETS, MAIN_SECRET, MAIN_STORE_ID

KEY, SECRET = "ck_world_key", "cs_world_secret"
API_KEY = "cryptum-api-key-world"
CONFIGURED_SECRETS.update({KEY, SECRET, API_KEY})
START = 1_900_000_000.0
# Reconciliation looks this far back; the lag of the API stays well inside it.
LOOKBACK_HOURS = 2.0
RECONCILE_SECONDS = 300.0


class VirtualClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Callback:
    """One POST of a callback, as Cryptum's sender would make it."""

    body: bytes
    signature: str | None
    answers: list[int] = field(default_factory=list)


class World:
    """The three parties; `start()` brings them up, `close()` down."""

    def __init__(self, directory: Path, *, seed: int = 0) -> None:
        self.directory = directory
        self.clock = VirtualClock()
        self.started_at = self.clock.now
        self.rng = random.Random(seed)
        self.cryptum = CryptumSimulator(clock=self.clock, callback_retry_delays=())
        self.shop = WooCommerceSimulator()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""
        self.next_reconcile = START
        self._product = 100

    async def start(self) -> None:
        await self.cryptum.start()
        await self.shop.start()
        self.cryptum.add_store(MAIN_STORE_ID, api_key=API_KEY, webhook_secret=MAIN_SECRET)
        self.shop.add_key(KEY, SECRET)
        self._session = aiohttp.ClientSession()
        await self.start_bridge()

    async def close(self) -> None:
        await self.stop_bridge()
        if self._session is not None:
            await self._session.close()
        await self.cryptum.close()
        await self.shop.close()

    # The bridge ------------------------------------------------------------------------

    def config_document(self) -> dict[str, Any]:
        assert self.cryptum.base_url is not None and self.shop.base_url is not None
        return {
            "server": {"listen": "127.0.0.1:0"},
            "storage": {"path": str(self.directory / "bridge.sqlite3")},
            "delivery": {
                "timeout_seconds": 0.5,
                "backoff_initial_seconds": 5,
                "backoff_max_seconds": 600,
                "confirm_recheck_seconds": 300,
            },
            "reconcile": {
                "interval_seconds": RECONCILE_SECONDS,
                "lookback_hours": LOOKBACK_HOURS,
            },
            "stores": [
                {
                    "name": "main",
                    "cryptum_store_id": MAIN_STORE_ID,
                    "webhook_secret": MAIN_SECRET,
                    "cryptum_api_key": API_KEY,
                    "cryptum_api_url": self.cryptum.base_url,
                    "woocommerce": {
                        "url": self.shop.base_url,
                        "consumer_key": KEY,
                        "consumer_secret": SECRET,
                    },
                }
            ],
        }

    async def start_bridge(self) -> None:
        config = parse_config(self.config_document(), base_dir=self.directory)
        app = create_app(config, clock=self.clock, jitter=self._jitter, background=False)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def _jitter(self) -> float:
        # Never zero: a retry is then always due strictly later than now.
        return self.rng.uniform(0.05, 1.0)

    async def stop_bridge(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        await self.stop_bridge()
        await self.start_bridge()

    async def crash_during_deliveries(self, after_requests: int) -> None:
        """Stop the bridge in the middle of its work, after `after_requests` more shop requests.

        Cancelled where it stood, as a kill would leave it: a delivery may
        have changed the order and not yet noted it, or noted it and not
        yet recorded that it did.
        """
        seen = len(self.shop.requests)
        work = asyncio.create_task(self.worker.run_due())
        while not work.done() and len(self.shop.requests) < seen + after_requests:
            await asyncio.sleep(0)
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        await self.restart()

    @property
    def app(self) -> web.Application:
        assert self._runner is not None
        return self._runner.app

    @property
    def worker(self) -> DeliveryWorker:
        assert self._runner is not None
        return self._runner.app[WORKER]

    @property
    def reconciler(self) -> Reconciler:
        assert self._runner is not None
        return self._runner.app[RECONCILER]

    async def work(self) -> None:
        """What the bridge's loops would do by now: reconcile when due, then deliver."""
        if self.clock.now >= self.next_reconcile:
            await self.reconciler.run_once()
            self.next_reconcile = self.clock.now + RECONCILE_SECONDS
        await self.worker.run_due()

    # Orders and callbacks -------------------------------------------------------------

    def checkout(self, woo_order_id: int) -> str:
        """An order in the shop and its Cryptum payment request; returns the Cryptum id."""
        self._product += 1
        self.shop.add_product(self._product, f"Widget {self._product}", stock=10, price="12.50")
        self.shop.add_order(woo_order_id, items=[(self._product, 1)])
        assert self.cryptum.base_url is not None
        order = self.cryptum.create_order(
            store_id=MAIN_STORE_ID,
            ecommerce_order_id=str(woo_order_id),
            total="12.50",
            callback_url=f"{self.url}/callbacks/cryptum",
        )
        return order.id

    def product_of(self, woo_order_id: int) -> int:
        return self.shop.orders[woo_order_id].line_items[0].product_id

    def callback(
        self,
        cryptum_order_id: str,
        status: str,
        *,
        tx: str | None = None,
        message: str | None = None,
    ) -> Callback:
        """The callback Cryptum sends when the payment reaches `status`, signed."""
        order = self.cryptum.orders[cryptum_order_id]
        if message is None:
            message = "Payment was successful" if status == "confirmed" else status
        body = json.dumps(
            {
                "message": message,
                "status": status,
                "orderId": cryptum_order_id,
                "ecommerceOrderId": order.ecommerce_order_id,
                "storeId": MAIN_STORE_ID,
                "transactions": [{"protocol": "POLYGON", "hash": tx}] if tx else [],
                "updatedProducts": None,
            },
            separators=(",", ":"),
        ).encode()
        return Callback(body, sign(body, MAIN_SECRET))

    async def post(self, callback: Callback) -> int:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if callback.signature is not None:
            headers["X-Webhook-Signature"] = callback.signature
        async with self._session.post(
            f"{self.url}/callbacks/cryptum", data=callback.body, headers=headers
        ) as response:
            callback.answers.append(response.status)
            return response.status

    def rows(self, query: str) -> list[dict[str, Any]]:
        """What the bridge's database holds, read as another process would."""
        with sqlite3.connect(self.directory / "bridge.sqlite3") as connection:
            connection.row_factory = sqlite3.Row
            return [dict(row) for row in connection.execute(query)]

    def meta(self, woo_order_id: int) -> dict[str, Any]:
        """The shop order's meta data, by key."""
        return {item["key"]: item["value"] for item in self.shop.orders[woo_order_id].meta_data}

    def bridge_notes(self, woo_order_id: int) -> list[str]:
        return [
            n.note for n in self.shop.notes(woo_order_id) if "[cryptum-bridge delivery" in n.note
        ]

    def system_notes(self, woo_order_id: int, prefix: str) -> list[str]:
        return [n.note for n in self.shop.notes(woo_order_id) if n.note.startswith(prefix)]
