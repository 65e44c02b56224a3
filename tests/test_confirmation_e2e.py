"""End to end with Cryptum's API: confirmation, reconciliation, and the demo.

A real `cryptum-bridge serve` runs against the simulated Cryptum (API and
callback sender) and the simulated WooCommerce, all on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bridge.reconcile import RECONCILED_STATUSES
from bridge_simulators.cryptum import CryptumSimulator
from bridge_simulators.woocommerce import WooCommerceSimulator

from daemon import Bridge, bridge_notes, note_of, wait_until
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
async def bridge(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> AsyncIterator[Bridge]:
    running = await confirming_bridge(tmp_path, shop, cryptum).started()
    # Else the start's reconciliation pass may find a test's payment before its
    # callback does, and the callback's delivery has nothing left to apply.
    await first_reconciliation_done(cryptum)
    yield running
    assert await running.stopped() == 0


def reconciliation_passes(cryptum: CryptumSimulator) -> int:
    """Passes that have listed every reconciled status, counted by the last one they list.

    By the time that listing is answered, the pass has dealt with what the
    earlier ones held (the tests' orders are never in the last status).
    """
    last = RECONCILED_STATUSES[-1]
    return sum(
        r.path == "/plugins/orders/" and r.status == 200 and r.query.get("paymentStatus") == last
        for r in cryptum.api_requests
    )


async def more_reconciliation_passes(cryptum: CryptumSimulator, count: int) -> None:
    """Wait until `count` more passes have finished; the first may have begun earlier."""
    target = reconciliation_passes(cryptum) + count
    await wait_until(lambda: reconciliation_passes(cryptum) >= target)


async def first_reconciliation_done(cryptum: CryptumSimulator) -> None:
    """Wait for the pass a starting bridge makes."""
    await wait_until(lambda: reconciliation_passes(cryptum) >= 1)


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
    assert delivery["outcome"].startswith("pay: ")
    assert bridge.applied() == [(order_id, "confirmed", delivery["id"])]
    assert shop.orders[11].status == "processing"
    assert shop.orders[11].transaction_id == TX[0][1]
    assert bridge_notes(shop, 11) == [note_of(shop, delivery)]
    # The note names the transaction the API reported; the callback carried none.
    assert TX[0][1] in note_of(shop, delivery)


async def test_an_amount_mismatch_holds_the_order_with_a_note(
    bridge: Bridge, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    order_id = order_for(cryptum, bridge, "11", "15.00")  # the WooCommerce order is 20.00
    sent = await cryptum.change_status(order_id, "confirmed", transactions=TX)
    delivery = await bridge.settled(sent.final_answer["event_id"])
    order = shop.orders[11]
    assert order.status == "on-hold"
    assert order.date_paid is None
    assert delivery["state"] == "done"
    assert delivery["outcome"] == (
        "set_status: amount mismatch: the order total is 20.00, the Cryptum order's is 15.00"
    )
    notes = bridge_notes(shop, 11)
    assert notes == [note_of(shop, delivery)], (notes, bridge.deliveries())
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
    assert bridge.applied() == []
    assert shop.orders[11].status == "pending"
    assert bridge_notes(shop, 11) == []
    await wait_until(lambda: bool(bridge.logged("security.callback_not_confirmed")))
    (alert,) = bridge.logged("security.callback_not_confirmed")
    assert (alert["event_id"], alert["reason"]) == (answer["event_id"], delivery["outcome"])


async def test_a_down_api_delays_the_payment_until_it_returns(
    bridge: Bridge, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    order_id = order_for(cryptum, bridge, "11", "20.00")
    cryptum.down = True
    sent = await cryptum.change_status(order_id, "confirmed", transactions=TX)
    event_id = sent.final_answer["event_id"]
    await wait_until(lambda: (bridge.delivery_of(event_id)["attempts"] or 0) >= 3)
    assert shop.orders[11].status == "pending"  # nothing unverified is applied
    assert "Cryptum API unreachable" in bridge.delivery_of(event_id)["last_error"]
    cryptum.down = False
    delivery = await bridge.settled(event_id)
    assert delivery["state"] == "done"
    assert delivery["outcome"].startswith("pay: ")
    assert bridge.applied() == [(order_id, "confirmed", delivery["id"])]
    assert shop.orders[11].status == "processing"
    assert bridge_notes(shop, 11) == [note_of(shop, delivery)]


async def test_a_lost_callback_is_found_by_reconciliation_once(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    bridge = await confirming_bridge(tmp_path, shop, cryptum, reconcile_seconds=1).started()
    try:
        order_id = order_for(cryptum, bridge, "12", "10.00")
        lost = await cryptum.change_status(order_id, "confirmed", transactions=TX, lose=True)
        assert lost.lost and not lost.attempts
        await wait_until(lambda: [d["state"] for d in bridge.deliveries()] == ["done"], 10)
        assert shop.orders[12].status == "processing"
        # The payment came in through reconciliation's own event, and nothing else.
        (found,) = bridge.deliveries()
        event = bridge.event(found["event_id"])
        assert (event["source"], event["cryptum_order_id"], event["status"]) == (
            "reconcile",
            order_id,
            "confirmed",
        )
        assert event["signature_form"] is None
        assert [
            (e["event_id"], e["cryptum_order_id"]) for e in bridge.logged("reconcile.enqueued")
        ] == [(found["event_id"], order_id)]
        assert bridge.applied() == [(order_id, "confirmed", found["id"])]
        assert bridge_notes(shop, 12) == [note_of(shop, found)]

        await more_reconciliation_passes(cryptum, 2)  # and they find nothing new
        assert bridge.deliveries() == [found]
        assert len(bridge.logged("reconcile.enqueued")) == 1

        # The callback turns up late: stored, but it changes nothing more.
        late = await cryptum.send_callback(order_id)
        assert late.delivered
        delivery = await bridge.settled(late.final_answer["event_id"])
        assert delivery["state"] == "skipped"
        assert delivery["outcome"] == f"confirmed already applied by delivery {found['id']}"
        assert bridge.source_of(delivery) == "callback"
        assert bridge_notes(shop, 12) == [note_of(shop, found)]
        assert shop.products[10].stock == 99
    finally:
        assert await bridge.stopped() == 0


async def test_a_callback_then_reconciliation_is_one_effect(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    bridge = await confirming_bridge(tmp_path, shop, cryptum, reconcile_seconds=1).started()
    try:
        order_id = order_for(cryptum, bridge, "13", "30.00")
        sent = await cryptum.change_status(order_id, "confirmed", transactions=TX)
        await bridge.settled(sent.final_answer["event_id"])
        # Two passes: the first may have begun before the payment was applied.
        await more_reconciliation_passes(cryptum, 2)
        deliveries = bridge.deliveries()
        (done,) = [d for d in deliveries if d["state"] == "done"]
        assert bridge.applied() == [(order_id, "confirmed", done["id"])]
        assert bridge_notes(shop, 13) == [note_of(shop, done)]
        assert shop.products[10].stock == 97
        # Reconciliation may list the payment before the callback's event is
        # stored, and enqueue it too: then the later of the two deliveries
        # finds it applied. Either way one callback event, and one event of
        # reconciliation's for each payment it logged as enqueued.
        others = [d for d in deliveries if d is not done]
        assert [(d["state"], d["outcome"]) for d in others] in (
            [],
            [("skipped", f"confirmed already applied by delivery {done['id']}")],
        )
        by_source = {
            source: [d["event_id"] for d in deliveries if bridge.source_of(d) == source]
            for source in ("callback", "reconcile")
        }
        assert by_source["callback"] == [sent.final_answer["event_id"]]
        enqueued = [e["event_id"] for e in bridge.logged("reconcile.enqueued")]
        assert by_source["reconcile"] == enqueued == [d["event_id"] for d in others]
    finally:
        assert await bridge.stopped() == 0


async def test_unsigned_callbacks_are_confirmed_before_anything_is_applied(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    bridge = confirming_bridge(tmp_path, shop, cryptum)
    text = bridge.config_path.read_text().replace(
        "[[stores]]\n", "[[stores]]\nallow_unsigned = true\n"
    )
    bridge.config_path.write_text(text)
    await bridge.started()
    try:
        await first_reconciliation_done(cryptum)  # as in the `bridge` fixture
        order_id = order_for(cryptum, bridge, "11", "20.00")
        cryptum.set_status(order_id, "confirmed", transactions=TX)
        sent = await cryptum.send_callback(order_id, unsigned=True)
        assert sent.attempts == [200]
        event_id = sent.final_answer["event_id"]
        delivery = await bridge.settled(event_id)
        assert shop.orders[11].status == "processing"
        assert bridge.event(event_id)["signature_form"] == "unsigned"
        assert delivery["state"] == "done"
        assert bridge_notes(shop, 11) == [note_of(shop, delivery)]
        # An unsigned claim the API does not back changes nothing.
        other = order_for(cryptum, bridge, "12", "10.00")
        claim = await cryptum.send_callback(other, unsigned=True, status="confirmed")
        claim_id = claim.final_answer["event_id"]
        await wait_until(lambda: (bridge.delivery_of(claim_id)["attempts"] or 0) >= 2)
        assert shop.orders[12].status == "pending"
        waiting = bridge.delivery_of(claim_id)
        assert waiting["state"] == "pending"
        assert "the Cryptum API says 'pending'" in waiting["last_error"]
        assert bridge.applied() == [(order_id, "confirmed", delivery["id"])]
        assert bridge_notes(shop, 12) == []
    finally:
        assert await bridge.stopped() == 0


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
    delivery = await bridge.settled(answer["event_id"])
    assert shop.orders[11].status == "processing"
    assert bridge.event(answer["event_id"])["store"] == "main"
    assert delivery["state"] == "done"
    assert bridge.applied() == [(order_id, "confirmed", delivery["id"])]
    assert bridge_notes(shop, 11) == [note_of(shop, delivery)]
