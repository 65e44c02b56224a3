"""The delivery worker's dead ends, driven in this process on a virtual clock.

The real app (`create_app`, background loops off), the simulated Cryptum and
the simulated shop on 127.0.0.1, as in `payment_world`: the test calls
`run_due` and moves the clock, so days of backoff pass with nothing asleep.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.signature import sign

from payment_world import Callback, World
from support import MAIN_SECRET, MAIN_STORE_ID

TX = "0x5eed"


class ShortLivedWorld(World):
    """A world whose bridge gives up on a delivery after one hour."""

    def config_document(self) -> dict[str, Any]:
        document = super().config_document()
        document["delivery"]["max_age_hours"] = 1
        return document


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    started = World(tmp_path)
    await started.start()
    yield started
    await started.close()


@pytest.fixture
async def short_lived(tmp_path: Path) -> AsyncIterator[World]:
    started = ShortLivedWorld(tmp_path)
    await started.start()
    yield started
    await started.close()


def recorded(world: World, query: str) -> list[dict[str, Any]]:
    with sqlite3.connect(world.directory / "bridge.sqlite3") as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(query)]


def the_delivery(world: World) -> dict[str, Any]:
    (delivery,) = recorded(world, "SELECT * FROM deliveries")
    return delivery


async def test_a_cryptum_order_for_another_woocommerce_order_is_dead_lettered(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world.checkout(11)  # same total as order 12: only the order id tells them apart
    theirs = world.checkout(12)
    world.cryptum.set_status(theirs, "confirmed", transactions=[("POLYGON", TX)])
    # Correctly signed, for our store, but it names order 11 for the payment of order 12.
    body = json.dumps(
        {
            "message": "Payment was successful",
            "status": "confirmed",
            "orderId": theirs,
            "ecommerceOrderId": "11",
            "storeId": MAIN_STORE_ID,
            "transactions": [{"protocol": "POLYGON", "hash": TX}],
        }
    ).encode()
    assert await world.post(Callback(body, sign(body, MAIN_SECRET))) == 200

    assert await world.worker.run_due() == 1
    delivery = the_delivery(world)
    assert (delivery["state"], delivery["attempts"]) == ("dead", 1)
    assert delivery["outcome"] == "the Cryptum order is for WooCommerce order 12"
    # Nothing applied, nor even read: the API was asked before the shop.
    assert world.shop.requests == []
    assert [world.shop.orders[n].status for n in (11, 12)] == ["pending", "pending"]
    assert recorded(world, "SELECT * FROM applied_payments") == []
    (alert,) = [line for line in logs() if line["event"] == "security.callback_not_confirmed"]
    assert alert["reason"] == delivery["outcome"]


async def test_a_delivery_failing_past_max_age_hours_is_dead_lettered(
    short_lived: World,
) -> None:
    world = short_lived
    cryptum_id = world.checkout(11)
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    received = world.clock.now
    assert await world.post(world.callback(cryptum_id, "confirmed", tx=TX)) == 200
    world.shop.fail_next(10_000, status=503)  # down for longer than the bridge waits

    # Each attempt when it is due, for three times the hour the bridge allows.
    while world.clock.now < received + 3 * 3600:
        await world.worker.run_due()
        delivery = the_delivery(world)
        if delivery["state"] != "pending":
            break
        world.clock.now = delivery["next_attempt_at"]

    assert delivery["state"] == "dead"
    assert delivery["outcome"] == "gave up after 1 h: WooCommerce answered 503"
    assert delivery["attempts"] > 5  # retried with backoff until then
    # It gave up at the attempt whose retry would have fallen past the hour, not later.
    assert received < delivery["updated_at"] <= received + 3600
    assert world.shop.orders[11].status == "pending"
    assert world.bridge_notes(11) == []
    assert recorded(world, "SELECT * FROM applied_payments") == []
