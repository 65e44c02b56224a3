"""End to end: a real `cryptum-bridge serve` delivering to the simulated WooCommerce.

The bridge runs as a subprocess; the simulated shop runs in the test's event
loop on 127.0.0.1. Retry waits are shortened through the config (the backoff
settings), never by sleeping through them. What a process adds is tested
here (a kill -9, /readyz, many orders at once, send-test); each way a
delivery ends or is retried is tested in process on a virtual clock, in
tests/test_delivery_worker.py.

Every test runs on both storage engines (`storage_settings`: a SQLite file,
then a database on the test MariaDB), the daemon reading and writing through
the engine its config names.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.config import StorageConfig
from bridge_simulators.woocommerce import WooCommerceSimulator

from daemon import Bridge, bridge_notes, note_of, requests_for, wait_until
from support import callback_body

pytestmark = pytest.mark.slow

KEY, SECRET = "ck_e2e_read_write", "cs_e2e_read_write"
READ_ONLY_KEY, READ_ONLY_SECRET = "ck_e2e_read_only", "cs_e2e_read_only"


@pytest.fixture
async def shop() -> AsyncIterator[WooCommerceSimulator]:
    simulator = WooCommerceSimulator()
    simulator.add_key(KEY, SECRET)
    simulator.add_key(READ_ONLY_KEY, READ_ONLY_SECRET, permissions="read")
    simulator.seed_fixture_shop()
    await simulator.start()
    yield simulator
    await simulator.close()


@pytest.fixture
async def bridge(
    tmp_path: Path, shop: WooCommerceSimulator, storage_settings: StorageConfig
) -> AsyncIterator[Bridge]:
    running = await Bridge(
        tmp_path, shop, key=KEY, secret=SECRET, storage=storage_settings
    ).started()
    yield running
    assert await running.stopped() == 0


async def test_confirmed_payment_is_completed_with_one_note_in_three_requests(
    bridge: Bridge, shop: WooCommerceSimulator
) -> None:
    body = callback_body(order_id="pay-11", woo_order_id="11", status="confirmed")
    answer = await bridge.post(body)
    delivery = await bridge.settled(answer["event_id"])
    assert (delivery["state"], delivery["attempts"]) == ("done", 1)
    assert delivery["outcome"].startswith("pay: ")
    event = bridge.event(answer["event_id"])
    assert (event["source"], event["cryptum_order_id"], event["status"]) == (
        "callback",
        "pay-11",
        "confirmed",
    )
    assert bridge.applied() == [("pay-11", "confirmed", delivery["id"])]

    order = shop.orders[11]
    assert order.status == "processing"
    assert order.transaction_id.startswith("0x")
    assert shop.products[10].stock == 98  # the order holds 2
    meta = {entry["key"] for entry in order.meta_data}
    assert {"_cryptum_checkout_order_transactions", "_cryptum_order_id"} <= meta
    notes = [note.note for note in shop.notes(11)]
    assert any(note.startswith("Payment via Cryptum Checkout") for note in notes)
    assert bridge_notes(shop, 11) == [note_of(shop, delivery)]
    assert "Cryptum payment confirmed: order marked paid" in note_of(shop, delivery)
    assert requests_for(shop, 11) == ["GET", "PUT", "POST"]

    # The same callback again changes nothing more: no event, no delivery to run.
    again = await bridge.post(body)
    assert again == {"status": "duplicate", "event_id": answer["event_id"]}
    assert bridge.deliveries() == [delivery]
    assert requests_for(shop, 11) == ["GET", "PUT", "POST"]


async def test_cancellation_after_payment_leaves_the_order_paid(
    bridge: Bridge, shop: WooCommerceSimulator
) -> None:
    paid = await bridge.send(order_id="c-11", woo_order_id="11", status="confirmed")
    payment = await bridge.settled(paid["event_id"])
    cancelled = await bridge.send(order_id="c-11", woo_order_id="11", status="cancelled")
    delivery = await bridge.settled(cancelled["event_id"])
    assert payment["state"] == "done"
    assert delivery["state"] == "skipped"
    assert delivery["outcome"].startswith("nothing: ")
    assert shop.orders[11].status == "processing"
    assert shop.products[10].stock == 98
    assert bridge_notes(shop, 11) == [note_of(shop, payment)]
    assert bridge.applied() == [
        ("c-11", "confirmed", payment["id"]),
        ("c-11", "cancelled", delivery["id"]),
    ]


async def test_on_hold_then_confirmed_is_paid(bridge: Bridge, shop: WooCommerceSimulator) -> None:
    held = await bridge.send(order_id="h-12", woo_order_id="12", status="on-hold")
    holding = await bridge.settled(held["event_id"])
    assert shop.orders[12].status == "on-hold"
    paid = await bridge.send(order_id="h-12", woo_order_id="12", status="confirmed")
    paying = await bridge.settled(paid["event_id"])
    assert shop.orders[12].status == "processing"
    assert shop.orders[12].date_paid is not None
    assert [holding["state"], paying["state"]] == ["done", "done"]
    assert holding["outcome"].startswith("set_status: ")
    assert paying["outcome"].startswith("pay: ")
    # One note per change, each carrying its own delivery's marker.
    assert bridge_notes(shop, 12) == [note_of(shop, holding), note_of(shop, paying)]
    assert "order moved from pending to on-hold" in note_of(shop, holding)
    assert "order marked paid" in note_of(shop, paying)


async def test_read_only_key_makes_readyz_fail_with_the_reason(
    tmp_path: Path, shop: WooCommerceSimulator, storage_settings: StorageConfig
) -> None:
    bridge = await Bridge(
        tmp_path, shop, key=READ_ONLY_KEY, secret=READ_ONLY_SECRET, storage=storage_settings
    ).started()
    try:
        answer = await bridge.send(order_id="ro-11", woo_order_id="11", status="confirmed")

        async def readiness() -> tuple[int, dict[str, Any]]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{bridge.url}/readyz") as response,
            ):
                return response.status, await response.json()

        deadline = asyncio.get_running_loop().time() + 15
        while True:
            status, body = await readiness()
            if status == 503 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert status == 503
        assert any("read-only" in reason for reason in body["reasons"])
        delivery = bridge.delivery_of(answer["event_id"])
        assert delivery["state"] == "pending"
        assert "read-only" in delivery["last_error"]
        assert shop.orders[11].status == "pending"
        assert bridge_notes(shop, 11) == []
    finally:
        assert await bridge.stopped() == 0
    assert bridge.logged("delivery.config_error")


async def test_kill_9_during_a_delivery_completes_after_restart_with_one_note(
    tmp_path: Path, shop: WooCommerceSimulator, storage_settings: StorageConfig
) -> None:
    shop.latency_by_method = {"PUT": 1.0}
    bridge = await Bridge(
        tmp_path, shop, key=KEY, secret=SECRET, storage=storage_settings
    ).started()
    answer = await bridge.send(order_id="k-11", woo_order_id="11", status="confirmed")
    await wait_until(lambda: bridge.delivery_of(answer["event_id"])["progress"] == "acting")
    assert bridge.daemon is not None
    bridge.daemon.signal(signal.SIGKILL)
    assert await bridge.daemon.finished() == -signal.SIGKILL
    shop.latency_by_method = {}
    await asyncio.sleep(1.2)  # the PUT the killed bridge sent lands meanwhile

    await bridge.started()
    try:
        if storage_settings.engine == "mysql":
            # A MySQL node frees no lease at start: it cannot tell a dead
            # process's lease from a live node's, so the delivery waits for
            # the lease to run out (4 * timeout_seconds + 30 = 38 s here).
            assert bridge.logged("delivery.leases_released") == []
            assert bridge.delivery_of(answer["event_id"])["state"] == "pending"
            delivery = await bridge.settled(answer["event_id"], timeout=4 * 2 + 30 + 15)
        else:
            delivery = await bridge.settled(answer["event_id"])
            # The new process took over the lease the killed one held.
            assert [line["count"] for line in bridge.logged("delivery.leases_released")] == [1]
        assert (delivery["state"], delivery["attempts"]) == ("done", 2)
        assert delivery["outcome"].startswith("pay: ")
        assert shop.orders[11].status == "processing"
        assert shop.products[10].stock == 98
        assert bridge_notes(shop, 11) == [note_of(shop, delivery)]
    finally:
        assert await bridge.stopped() == 0


async def test_a_hundred_orders_in_parallel_keep_per_order_order(
    tmp_path: Path, shop: WooCommerceSimulator, storage_settings: StorageConfig
) -> None:
    shop.latency = 0.01
    order_ids = list(range(1000, 1100))
    for order_id in order_ids:
        shop.add_order(order_id, items=[(10, 1)])
    bridge = await Bridge(
        tmp_path, shop, key=KEY, secret=SECRET, storage=storage_settings
    ).started()
    try:
        # Confirmed then cancelled, per order: in order, the order ends paid;
        # reversed, it would end on hold ("paid after cancellation").
        sends = []
        for order_id in order_ids:
            sends.append(
                bridge.send(
                    order_id=f"p-{order_id}", woo_order_id=str(order_id), status="confirmed"
                )
            )
        answers = await asyncio.gather(*sends)
        later = await asyncio.gather(
            *(
                bridge.send(
                    order_id=f"p-{order_id}", woo_order_id=str(order_id), status="cancelled"
                )
                for order_id in order_ids
            )
        )
        payments = [await bridge.settled(a["event_id"], timeout=60) for a in answers]
        cancellations = [await bridge.settled(a["event_id"], timeout=60) for a in later]
        assert {shop.orders[order_id].status for order_id in order_ids} == {"processing"}
        assert {d["state"] for d in payments} == {"done"}
        assert {d["state"] for d in cancellations} == {"skipped"}
        for payment in payments:
            assert bridge_notes(shop, int(payment["woo_order_id"])) == [note_of(shop, payment)]
        assert shop.products[10].stock == 100 - len(order_ids)
    finally:
        assert await bridge.stopped() == 0


async def test_send_test_drives_a_real_order_end_to_end(
    bridge: Bridge, shop: WooCommerceSimulator
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "send-test",
        "--config",
        str(bridge.config_path),
        "--store",
        "main",
        "--order",
        "12",
        "--status",
        "confirmed",
        "--url",
        f"{bridge.url}/callbacks/cryptum/main",
        "--yes",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    assert b'answer: 200 {"status": "accepted"' in out
    await wait_until(lambda: shop.orders[12].status == "processing")
    (delivery,) = bridge.deliveries()
    delivery = await bridge.settled(delivery["event_id"])
    event = bridge.event(delivery["event_id"])
    assert (event["store"], event["woo_order_id"], event["source"]) == ("main", "12", "callback")
    assert event["cryptum_order_id"].startswith("send-test-")
    assert delivery["state"] == "done"
    assert bridge_notes(shop, 12) == [note_of(shop, delivery)]


async def test_send_test_reports_a_bridge_that_does_not_answer(
    tmp_path: Path, shop: WooCommerceSimulator, storage_settings: StorageConfig
) -> None:
    # Never started: the config's storage is only read, so both engines take it alike.
    bridge = Bridge(tmp_path, shop, key=KEY, secret=SECRET, storage=storage_settings)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "send-test",
        "--config",
        str(bridge.config_path),
        "--store",
        "main",
        "--order",
        "12",
        "--status",
        "confirmed",
        "--url",
        "http://127.0.0.1:9/callbacks/cryptum/main",
        "--yes",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 1
    assert b"the bridge did not answer" in err
