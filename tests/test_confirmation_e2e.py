"""End to end with Cryptum's API: confirmation, reconciliation, and the demo.

A real `cryptum-bridge serve` runs against the simulated Cryptum (API and
callback sender) and the simulated WooCommerce, all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from bridge.reconcile import RECONCILED_STATUSES
from bridge.simulators.cryptum import CryptumSimulator
from bridge.simulators.woocommerce import WooCommerceSimulator

from daemon import Bridge, bridge_notes, wait_until
from support import MAIN_SECRET, MAIN_STORE_ID, signed_headers

pytestmark = pytest.mark.slow

KEY, SECRET = "ck_confirm_test", "cs_confirm_test"
API_KEY = "cryptum-api-key-main"
OTHER_STORE_ID = "7e0b6c1d-other-4f2a-8b3c-5d9e1a2f4b6c"
TX = [("POLYGON", "0x1f2e3d4c5b6a79881f2e3d4c5b6a7988")]


@pytest.fixture
async def shop() -> AsyncIterator[WooCommerceSimulator]:
    async with WooCommerceSimulator() as simulator:
        simulator.add_key(KEY, SECRET)
        simulator.seed_fixture_shop()
        yield simulator


@pytest.fixture
async def cryptum() -> AsyncIterator[CryptumSimulator]:
    async with CryptumSimulator(callback_retry_delays=(0.1,)) as simulator:
        simulator.add_store(MAIN_STORE_ID, api_key=API_KEY, webhook_secret=MAIN_SECRET)
        simulator.add_store(OTHER_STORE_ID, api_key="other-key", webhook_secret="other-secret")
        yield simulator


def confirming_bridge(
    tmp_path: Path,
    shop: WooCommerceSimulator,
    cryptum: CryptumSimulator,
    *,
    recheck_seconds: float = 60,
    reconcile_seconds: float = 3600,
) -> Bridge:
    assert cryptum.base_url is not None
    return Bridge(
        tmp_path,
        shop,
        key=KEY,
        secret=SECRET,
        store={"cryptum_api_key": API_KEY, "cryptum_api_url": cryptum.base_url},
        delivery={
            "timeout_seconds": 2,
            "backoff_initial_seconds": 0.05,
            "backoff_max_seconds": 0.3,
            "confirm_recheck_seconds": recheck_seconds,
        },
        reconcile={"interval_seconds": reconcile_seconds},
    )


@pytest.fixture
def bridge(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> Iterator[Bridge]:
    running = confirming_bridge(tmp_path, shop, cryptum).start()
    yield running
    assert running.stop() == 0


async def first_reconciliation_done(cryptum: CryptumSimulator) -> None:
    """Wait for the pass a starting bridge makes: one listing per reconciled status."""
    await wait_until(
        lambda: (
            sum(r.path == "/plugins/orders/" and r.status == 200 for r in cryptum.api_requests)
            >= len(RECONCILED_STATUSES)
        )
    )


def order_for(cryptum: CryptumSimulator, bridge: Bridge, woo_order_id: str, total: str) -> str:
    order = cryptum.create_order(
        store_id=MAIN_STORE_ID,
        ecommerce_order_id=woo_order_id,
        total=total,
        callback_url=f"{bridge.url}/callbacks/cryptum",
    )
    return order.id


async def test_the_api_decides_not_the_callback(
    bridge: Bridge, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    order_id = order_for(cryptum, bridge, "11", "20.00")
    # The callback claims confirmed while Cryptum's API still says pending.
    sent = await cryptum.send_callback(order_id, status="confirmed")
    event_id = sent.final_answer["event_id"]
    await wait_until(lambda: (bridge.delivery_of(event_id)["attempts"] or 0) >= 3)
    assert shop.orders[11].status == "pending"
    delivery = bridge.delivery_of(event_id)
    assert delivery["state"] == "pending"
    assert "the Cryptum API says 'pending'" in delivery["last_error"]

    cryptum.set_status(order_id, "confirmed", transactions=TX)  # no callback this time
    delivery = await bridge.settled(event_id)
    assert delivery["state"] == "done"
    assert shop.orders[11].status == "processing"
    assert shop.orders[11].transaction_id == TX[0][1]
    assert len(bridge_notes(shop, 11)) == 1


async def test_after_the_recheck_window_the_api_status_is_acted_on(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    bridge = confirming_bridge(tmp_path, shop, cryptum, recheck_seconds=0).start()
    try:
        # Else that pass may find the cancellation first, and the callback has nothing to do.
        await first_reconciliation_done(cryptum)
        order_id = order_for(cryptum, bridge, "11", "20.00")
        cryptum.set_status(order_id, "cancelled")
        sent = await cryptum.send_callback(order_id, status="confirmed")
        delivery = await bridge.settled(sent.final_answer["event_id"])
        assert shop.orders[11].status == "cancelled"  # what the API says, not the callback
        assert delivery["state"] == "done"
    finally:
        assert bridge.stop() == 0


async def test_an_amount_mismatch_holds_the_order_with_a_note(
    bridge: Bridge, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    order_id = order_for(cryptum, bridge, "11", "15.00")  # the WooCommerce order is 20.00
    sent = await cryptum.change_status(order_id, "confirmed", transactions=TX)
    await bridge.settled(sent.final_answer["event_id"])
    order = shop.orders[11]
    assert order.status == "on-hold"
    assert order.date_paid is None
    notes = bridge_notes(shop, 11)
    assert len(notes) == 1, (notes, bridge.deliveries())
    (note,) = notes
    assert "amount mismatch" in note and "NOT marked paid" in note


async def test_an_order_of_another_store_is_dead_lettered(
    bridge: Bridge, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    theirs = cryptum.create_order(
        store_id=OTHER_STORE_ID,
        ecommerce_order_id="11",
        total="20.00",
        callback_url="http://127.0.0.1:9/unused",
    )
    cryptum.set_status(theirs.id, "confirmed", transactions=TX)
    # A correctly signed callback for our store that names the other store's order.
    body = json.dumps(
        {
            "status": "confirmed",
            "orderId": theirs.id,
            "ecommerceOrderId": "11",
            "storeId": MAIN_STORE_ID,
            "transactions": [],
            "message": "Payment was successful",
        }
    ).encode()
    answer = await bridge.post(body)
    delivery = await bridge.settled(answer["event_id"])
    assert delivery["state"] == "dead"
    assert delivery["outcome"] == "the Cryptum order belongs to another store"
    assert shop.orders[11].status == "pending"
    assert bridge.daemon is not None
    await asyncio.sleep(0.2)
    assert any(e["event"] == "security.callback_not_confirmed" for e in bridge.daemon.events())


async def test_an_order_unknown_to_cryptum_is_dead_lettered(
    bridge: Bridge, shop: WooCommerceSimulator
) -> None:
    answer = await bridge.send(order_id="made-up", woo_order_id="11", status="confirmed")
    delivery = await bridge.settled(answer["event_id"])
    assert delivery["state"] == "dead"
    assert "Cryptum does not know order made-up" in delivery["outcome"]
    assert shop.orders[11].status == "pending"


async def test_a_down_api_delays_the_payment_until_it_returns(
    bridge: Bridge, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    order_id = order_for(cryptum, bridge, "11", "20.00")
    cryptum.down = True
    sent = await cryptum.change_status(order_id, "confirmed", transactions=TX)
    event_id = sent.final_answer["event_id"]
    await wait_until(lambda: (bridge.delivery_of(event_id)["attempts"] or 0) >= 3)
    assert shop.orders[11].status == "pending"  # nothing unverified is applied
    cryptum.down = False
    delivery = await bridge.settled(event_id)
    assert delivery["state"] == "done"
    assert shop.orders[11].status == "processing"
    assert len(bridge_notes(shop, 11)) == 1


async def test_a_lost_callback_is_found_by_reconciliation_once(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    bridge = confirming_bridge(tmp_path, shop, cryptum, reconcile_seconds=1).start()
    try:
        order_id = order_for(cryptum, bridge, "12", "10.00")
        lost = await cryptum.change_status(order_id, "confirmed", transactions=TX, lose=True)
        assert lost.lost and not lost.attempts
        await wait_until(lambda: shop.orders[12].status == "processing", timeout=10)
        await asyncio.sleep(2.5)  # two more reconciliation runs find nothing new
        assert len(bridge_notes(shop, 12)) == 1
        sources = [d for d in bridge.deliveries() if d["woo_order_id"] == "12"]
        assert len(sources) == 1
        assert bridge.daemon is not None
        enqueued = [e for e in bridge.daemon.events() if e["event"] == "reconcile.enqueued"]
        assert [e["cryptum_order_id"] for e in enqueued] == [order_id]

        # The callback turns up late: stored, but it changes nothing more.
        late = await cryptum.send_callback(order_id)
        assert late.delivered
        delivery = await bridge.settled(late.final_answer["event_id"])
        assert delivery["state"] == "skipped"
        assert len(bridge_notes(shop, 12)) == 1
        assert shop.products[10].stock == 99
    finally:
        assert bridge.stop() == 0


async def test_a_callback_then_reconciliation_is_one_effect(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    bridge = confirming_bridge(tmp_path, shop, cryptum, reconcile_seconds=1).start()
    try:
        order_id = order_for(cryptum, bridge, "13", "30.00")
        sent = await cryptum.change_status(order_id, "confirmed", transactions=TX)
        await bridge.settled(sent.final_answer["event_id"])
        await asyncio.sleep(2.5)  # reconciliation sees the payment
        # Reconciliation may list the payment before the callback's event is
        # stored, and enqueue it too: then that delivery finds it applied.
        states = sorted(d["state"] for d in bridge.deliveries())
        assert states in (["done"], ["done", "skipped"])
        assert len(bridge_notes(shop, 13)) == 1
        assert shop.products[10].stock == 97
    finally:
        assert bridge.stop() == 0


async def test_unsigned_callbacks_are_confirmed_before_anything_is_applied(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    bridge = confirming_bridge(tmp_path, shop, cryptum)
    text = bridge.config_path.read_text().replace(
        "[[stores]]\n", "[[stores]]\nallow_unsigned = true\n"
    )
    bridge.config_path.write_text(text)
    bridge.start()
    try:
        order_id = order_for(cryptum, bridge, "11", "20.00")
        cryptum.set_status(order_id, "confirmed", transactions=TX)
        sent = await cryptum.send_callback(order_id, unsigned=True)
        assert sent.attempts == [200]
        await bridge.settled(sent.final_answer["event_id"])
        assert shop.orders[11].status == "processing"
        # An unsigned claim the API does not back changes nothing.
        other = order_for(cryptum, bridge, "12", "10.00")
        claim = await cryptum.send_callback(other, unsigned=True, status="confirmed")
        await wait_until(
            lambda: (bridge.delivery_of(claim.final_answer["event_id"])["attempts"] or 0) >= 2
        )
        assert shop.orders[12].status == "pending"
    finally:
        assert bridge.stop() == 0


def test_the_demo_tells_its_story_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "demo"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "WooCommerce: order #101 is processing, paid" in out
    assert '"status": "duplicate"' in out
    assert 'bridge answered 401 {"error": "invalid_signature"}' in out
    assert "it found 1 payment that never arrived as a callback." in out
    assert "WooCommerce: order #102 is processing, paid" in out
    assert "a paid order is never cancelled" in out
    assert "Every step behaved as described." in out


async def test_callbacks_through_the_path_route_are_confirmed_too(
    bridge: Bridge, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    order_id = order_for(cryptum, bridge, "11", "20.00")
    cryptum.set_status(order_id, "confirmed", transactions=TX)
    body = json.dumps(
        {
            "status": "confirmed",
            "orderId": order_id,
            "ecommerceOrderId": "11",
            "storeId": MAIN_STORE_ID,
            "transactions": [],
            "message": "ok",
        }
    ).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{bridge.url}/callbacks/cryptum/main", data=body, headers=signed_headers(body)
        ) as response,
    ):
        answer = await response.json()
    await bridge.settled(answer["event_id"])
    assert shop.orders[11].status == "processing"
