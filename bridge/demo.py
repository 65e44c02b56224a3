"""`cryptum-bridge demo`: the whole flow on this machine in seconds, with nothing to set up.

The bridge runs in this process with the built-in Cryptum and WooCommerce
simulators on 127.0.0.1 and a temporary database, and a short story is
played through it: a checkout, a pending then a confirmed payment, a
duplicate, a forged callback, a lost callback found by reconciliation, and a
cancellation after payment. Each step prints what arrived, what the bridge
decided and what WooCommerce now shows, and the demo checks the outcome it
describes: it exits 1 if the bridge did not behave as told.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from bridge_simulators.cryptum import CryptumSimulator
from bridge_simulators.cryptum_orders import SimCryptumOrder
from bridge_simulators.woocommerce import WooCommerceSimulator

from .app import create_app
from .app_keys import RECONCILER, STORAGE
from .config import Config, LoggingConfig, parse_config
from .log_setup import configure_logging
from .storage import DeliveryRow, DeliveryState

__all__ = ["run_demo"]

STORE_ID = "5f1d0c2e-demo-4c1b-9a77-0b6d2f8e1a11"
WEBHOOK_SECRET = "whsec_demo_only_4f8a2c"
API_KEY = "demo-api-key"
WOO_KEY, WOO_SECRET = "ck_demo_0123456789", "cs_demo_0123456789"
CHAIN = "POLYGON"


class DemoFailed(Exception):
    """The bridge did something other than what the story says."""


class Story:
    """The running pieces, and the helpers each step uses."""

    def __init__(
        self,
        out: TextIO,
        woo: WooCommerceSimulator,
        cryptum: CryptumSimulator,
        app: web.Application,
        callback_url: str,
    ) -> None:
        self.out = out
        self.woo = woo
        self.cryptum = cryptum
        self.app = app
        self.callback_url = callback_url
        self.storage = app[STORAGE]

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, number: int, title: str) -> None:
        self.say()
        self.say(f"{number}. {title}")

    def check(self, condition: bool, what: str) -> None:
        if not condition:
            raise DemoFailed(what)

    async def settled(self, event_id: int) -> DeliveryRow:
        """Wait for the event's delivery to finish."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = await self.storage.list_deliveries(limit=1000)
            row = next((r for r in rows if r.event_id == event_id), None)
            if row is not None and row.state != DeliveryState.PENDING:
                return row
            await asyncio.sleep(0.02)
        raise DemoFailed(f"event {event_id} was not delivered within 10 s")

    def shop_shows(self, order_id: int) -> None:
        order = self.woo.orders[order_id]
        stock = self.woo.products[10].stock
        bridge_notes = [n.note for n in self.woo.notes(order_id) if "cryptum-bridge" in n.note]
        self.say(
            f"   WooCommerce: order #{order_id} is {order.status}"
            + (f", paid (transaction {order.transaction_id})" if order.date_paid else "")
            + f"; widgets in stock: {stock}; bridge notes: {len(bridge_notes)}"
        )
        if bridge_notes:
            self.say(f"   latest note: {bridge_notes[-1]}")

    def answered(self, delivery: Any) -> None:
        answer = delivery.final_answer
        status = delivery.attempts[-1] if delivery.attempts else None
        self.say(f"   bridge answered {status} {json.dumps(answer)}")


async def _story(story: Story) -> None:
    first = await _a_payment_confirms(story)
    await _a_lost_callback_is_found(story)
    await _a_paid_order_is_never_cancelled(story, first)


async def _a_payment_confirms(story: Story) -> SimCryptumOrder:
    """Steps 1-5: checkout, pending, confirmed, a duplicate, a forgery."""
    woo, cryptum = story.woo, story.cryptum

    story.step(1, "A customer checks out order #101: 2 widgets, 20.00 USD, paid with Cryptum.")
    first = cryptum.create_order(
        store_id=STORE_ID, ecommerce_order_id="101", total="20.00", callback_url=story.callback_url
    )
    story.say(f"   Cryptum order {first.id} created; WooCommerce order #101 is pending.")

    story.step(2, "Cryptum reports the payment pending.")
    pending = await cryptum.change_status(first.id, "pending")
    story.answered(pending)
    row = await story.settled(pending.final_answer["event_id"])
    story.say(f"   bridge decided: {row.state} ({row.outcome})")
    story.check(
        row.state == DeliveryState.SKIPPED and woo.orders[101].status == "pending",
        "pending changed",
    )
    story.shop_shows(101)

    story.step(3, "The payment confirms on-chain; Cryptum reports it confirmed.")
    confirmed = await cryptum.change_status(
        first.id, "confirmed", transactions=[(CHAIN, "0x5b2e9f0c4d7a1e3b8c6d2f4a9e1b7c3d")]
    )
    story.answered(confirmed)
    row = await story.settled(confirmed.final_answer["event_id"])
    story.say(f"   bridge confirmed the status with Cryptum's API, then: {row.outcome}")
    story.check(woo.orders[101].status == "processing", "order 101 was not paid")
    story.check(woo.products[10].stock == 8, "stock was not reduced once")
    story.shop_shows(101)

    story.step(4, "Cryptum sends the same callback again (it retries when unsure).")
    duplicate = await cryptum.send_callback(first.id)
    story.answered(duplicate)
    story.check(duplicate.final_answer.get("status") == "duplicate", "duplicate not recognised")
    story.say("   stored once, delivered once: nothing more happens.")

    story.step(5, "Someone forges a 'confirmed' callback for order #101 without the secret.")
    forged = await cryptum.send_callback(first.id, secret="not-the-webhook-secret")
    story.answered(forged)
    story.check(forged.attempts[-1] == 401, "forged callback not refused")
    return first


async def _a_lost_callback_is_found(story: Story) -> None:
    """Step 6: a callback that never arrives, found by reconciliation."""
    woo, cryptum = story.woo, story.cryptum
    story.step(6, "Order #102 is paid, but Cryptum's callback never arrives.")
    second = cryptum.create_order(
        store_id=STORE_ID, ecommerce_order_id="102", total="10.00", callback_url=story.callback_url
    )
    await cryptum.change_status(
        second.id,
        "confirmed",
        transactions=[(CHAIN, "0x9d4c1b7e2a5f8c3d6e0b1a4f7c2d5e8b")],
        lose=True,
    )
    story.say("   the callback is lost; WooCommerce order #102 is still pending.")
    story.say("   reconciliation lists recent Cryptum orders (every 5 minutes; now):")
    found = await story.app[RECONCILER].run_once()
    story.say(f"   it found {found} payment that never arrived as a callback.")
    rows = await story.storage.list_deliveries(limit=1)
    row = await story.settled(rows[0].event_id)
    story.say(f"   bridge decided: {row.outcome}")
    story.check(woo.orders[102].status == "processing", "order 102 was not paid")
    story.shop_shows(102)


async def _a_paid_order_is_never_cancelled(story: Story, first: SimCryptumOrder) -> None:
    """Step 7: a cancellation after the payment."""
    woo, cryptum = story.woo, story.cryptum
    story.step(7, "Later, Cryptum reports order #101's payment cancelled.")
    cancelled = await cryptum.change_status(first.id, "cancelled")
    story.answered(cancelled)
    row = await story.settled(cancelled.final_answer["event_id"])
    story.say(f"   bridge decided: {row.state} ({row.outcome}): a paid order is never cancelled.")
    story.check(woo.orders[101].status == "processing", "a paid order was cancelled")
    story.shop_shows(101)


def _config(directory: Path, woo_url: str, cryptum_url: str) -> Config:
    return parse_config(
        {
            "server": {"listen": "127.0.0.1:0"},
            "storage": {"path": str(directory / "demo.sqlite3")},
            "delivery": {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.5},
            # The demo runs reconciliation itself, when the story needs it.
            "reconcile": {"interval_seconds": 3600},
            "stores": [
                {
                    "name": "demo",
                    "cryptum_store_id": STORE_ID,
                    "webhook_secret": WEBHOOK_SECRET,
                    "cryptum_api_key": API_KEY,
                    "cryptum_api_url": cryptum_url,
                    "woocommerce": {
                        "url": woo_url,
                        "consumer_key": WOO_KEY,
                        "consumer_secret": WOO_SECRET,
                    },
                }
            ],
        },
        base_dir=directory,
    )


async def run_demo(out: TextIO) -> int:
    """Play the story; returns the exit code. The bridge's own logs go to a file."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cryptum-bridge-demo-") as name:
        directory = Path(name)
        log_file = (directory / "bridge.log").open("w")
        configure_logging(LoggingConfig(format="json", level="info"), stream=log_file)
        async with (
            WooCommerceSimulator() as woo,
            CryptumSimulator(callback_retry_delays=(0.1,)) as cryptum,
        ):
            woo.add_key(WOO_KEY, WOO_SECRET)
            woo.add_product(10, "Demo Widget", stock=10)
            woo.add_order(101, items=[(10, 2)])
            woo.add_order(102, items=[(10, 1)])
            cryptum.add_store(STORE_ID, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
            assert woo.base_url is not None and cryptum.base_url is not None
            config = _config(directory, woo.base_url, cryptum.base_url)
            app = create_app(config)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            story = Story(out, woo, cryptum, app, f"http://{host}:{port}/callbacks/cryptum")
            story.say("cryptum-bridge demo: the bridge, a simulated Cryptum and a simulated")
            story.say(f"WooCommerce shop on 127.0.0.1, database in {directory}")
            try:
                await _story(story)
            except DemoFailed as failure:
                story.say(f"\nDEMO FAILED: {failure}")
                return 1
            finally:
                await runner.cleanup()
                log_file.close()
        story.say(f"\nDone in {time.monotonic() - started:.1f} s. Every step behaved as described.")
        story.say(
            "Next: `cryptum-bridge serve --config config.toml` beside your shop (see README)."
        )
    return 0
