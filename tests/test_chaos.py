"""Crash chaos: `kill -9` the bridge at random moments while callbacks pour in.

Senders behave like Cryptum: each callback is retried until it gets a 2xx.
The bridge is killed and restarted again and again (CHAOS_KILLS, 20 in CI)
while deliveries run against the simulated shop. At the end:

- every callback that got a 2xx is in the database;
- every order ends in the status the rules say (paid; the later
  cancellations change nothing);
- each order has exactly one bridge note, and its stock went down once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bridge_simulators.woocommerce import WooCommerceSimulator

from daemon import MARKER, Bridge
from support import callback_body, signed_headers

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("CHAOS_KILLS", "20"))
ORDERS = int(os.environ.get("CHAOS_ORDERS", "120"))
FIRST_ORDER = 5000
KEY, SECRET = "ck_chaos", "cs_chaos"


@pytest.fixture
async def shop() -> AsyncIterator[WooCommerceSimulator]:
    async with WooCommerceSimulator(latency=0.01) as simulator:
        simulator.add_key(KEY, SECRET)
        simulator.add_product(10, "Chaos Widget", stock=10_000)
        for order_id in range(FIRST_ORDER, FIRST_ORDER + ORDERS):
            simulator.add_order(order_id, items=[(10, 1)])
        yield simulator


async def test_nothing_acknowledged_is_lost_and_nothing_is_applied_twice(
    tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "7")))
    bridge = await Bridge(tmp_path, shop, key=KEY, secret=SECRET).started()
    acknowledged: set[tuple[str, str]] = set()

    # Per order: a confirmation, sometimes sent twice, then a cancellation.
    plan: list[tuple[int, str, bytes]] = []
    for order_id in range(FIRST_ORDER, FIRST_ORDER + ORDERS):
        confirmed = callback_body(order_id=f"c-{order_id}", woo_order_id=str(order_id))
        plan.append((order_id, "confirmed", confirmed))
        if rng.random() < 0.3:
            plan.append((order_id, "confirmed", confirmed))  # Cryptum's own retry
        cancelled = callback_body(
            order_id=f"c-{order_id}", woo_order_id=str(order_id), status="cancelled"
        )
        plan.append((order_id, "cancelled", cancelled))

    async def send(session: aiohttp.ClientSession, status: str, body: bytes) -> None:
        while True:  # like Cryptum: until a 2xx comes back
            try:
                async with session.post(
                    f"{bridge.url}/callbacks/cryptum",
                    data=body,
                    headers=signed_headers(body),
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as response:
                    if response.status == 200:
                        payload = await response.json()
                        acknowledged.add((str(payload["event_id"]), status))
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.05)

    async def per_order(session: aiohttp.ClientSession, callbacks: list[tuple[str, bytes]]) -> None:
        # One order's callbacks in order, as Cryptum sends them over time.
        for status, body in callbacks:
            await send(session, status, body)
            await asyncio.sleep(rng.random() * 0.2)

    by_order: dict[int, list[tuple[str, bytes]]] = {}
    for order_id, status, body in plan:
        by_order.setdefault(order_id, []).append((status, body))

    interrupted = 0  # deliveries a killed bridge held, picked up by the next one

    async def killer() -> None:
        nonlocal interrupted
        for _ in range(KILLS):
            await asyncio.sleep(0.2 + rng.random() * 0.4)
            assert bridge.daemon is not None
            bridge.daemon.signal(signal.SIGKILL)
            await bridge.daemon.finished()
            interrupted += sum(
                event.get("count", 0)
                for event in bridge.daemon.events()
                if event["event"] == "delivery.leases_released"
            )
            await bridge.started()

    connector = aiohttp.TCPConnector(limit=32, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        senders = [
            asyncio.create_task(per_order(session, callbacks)) for callbacks in by_order.values()
        ]
        await killer()
        await asyncio.wait_for(asyncio.gather(*senders), timeout=120)

    try:

        def all_settled() -> bool:
            with sqlite3.connect(bridge.database) as connection:
                (pending,) = connection.execute(
                    "SELECT count(*) FROM deliveries WHERE state = 'pending'"
                ).fetchone()
            return pending == 0

        for _ in range(1200):
            if all_settled():
                break
            await asyncio.sleep(0.1)
        assert all_settled()
    finally:
        assert await bridge.stopped() == 0

    with sqlite3.connect(bridge.database) as connection:
        stored = {str(event_id) for (event_id,) in connection.execute("SELECT id FROM events")}
        dead = connection.execute("SELECT count(*) FROM deliveries WHERE state = 'dead'").fetchone()
    assert interrupted > 0, "no kill landed in the middle of a delivery"
    assert len(acknowledged) >= ORDERS * 2
    assert {event_id for event_id, _ in acknowledged} <= stored
    assert dead == (0,)
    for order_id in range(FIRST_ORDER, FIRST_ORDER + ORDERS):
        order = shop.orders[order_id]
        assert order.status == "processing", order_id
        notes = [note.note for note in shop.notes(order_id) if MARKER in note.note]
        assert len(notes) == 1, (order_id, notes)
    assert shop.products[10].stock == 10_000 - ORDERS


async def test_a_faulty_shop_gets_everything_once_when_it_recovers(
    tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "7")))
    bridge = await Bridge(
        tmp_path,
        shop,
        key=KEY,
        secret=SECRET,
        delivery={
            "timeout_seconds": 0.5,
            "backoff_initial_seconds": 0.05,
            "backoff_max_seconds": 0.5,
        },
    ).started()
    faults = 0
    stop_faults = asyncio.Event()

    async def inject() -> None:
        # Roughly every other request meets a fault while this runs.
        nonlocal faults
        while not stop_faults.is_set():
            choice = rng.randrange(6)
            if choice == 0:
                shop.fail_next(1, status=500)
            elif choice == 1:
                shop.fail_next(1, status=503)
            elif choice == 2:
                shop.fail_next(1, status=429, retry_after=1)
            elif choice == 3:
                shop.time_out_next(1, seconds=1.0)
            elif choice == 4:
                shop.reset_next(1)
            else:
                shop.drop_response_next(1, method=rng.choice(["PUT", "POST"]))
            faults += 1
            await asyncio.sleep(0.02)

    injector = asyncio.create_task(inject())
    try:
        async with aiohttp.ClientSession() as session:
            for order_id in range(FIRST_ORDER, FIRST_ORDER + ORDERS):
                for status in ("confirmed", "cancelled"):
                    body = callback_body(
                        order_id=f"f-{order_id}", woo_order_id=str(order_id), status=status
                    )
                    async with session.post(
                        f"{bridge.url}/callbacks/cryptum", data=body, headers=signed_headers(body)
                    ) as response:
                        assert response.status == 200
        await asyncio.sleep(3)  # deliveries struggle through the faults for a while
        stop_faults.set()
        await injector

        def pending() -> int:
            with sqlite3.connect(bridge.database) as connection:
                return int(
                    connection.execute(
                        "SELECT count(*) FROM deliveries WHERE state = 'pending'"
                    ).fetchone()[0]
                )

        for _ in range(1200):
            if pending() == 0:
                break
            await asyncio.sleep(0.1)
        assert pending() == 0
    finally:
        stop_faults.set()
        assert await bridge.stopped() == 0

    assert faults > 50
    with sqlite3.connect(bridge.database) as connection:
        assert connection.execute(
            "SELECT count(*) FROM deliveries WHERE state = 'dead'"
        ).fetchone() == (0,)
    for order_id in range(FIRST_ORDER, FIRST_ORDER + ORDERS):
        assert shop.orders[order_id].status == "processing", order_id
        notes = [note.note for note in shop.notes(order_id) if MARKER in note.note]
        assert len(notes) == 1, (order_id, notes)
    assert shop.products[10].stock == 10_000 - ORDERS
