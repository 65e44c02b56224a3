"""Crash chaos: `kill -9` the bridge at random moments while callbacks pour in.

Senders behave like Cryptum: each callback is retried until it gets a 2xx.
The bridge is killed and restarted again and again (CHAOS_KILLS, 20 in CI)
while deliveries run against the simulated shop, on each storage engine. On
MariaDB, two `serve` nodes share one database as well: each callback goes to
a node at random and to the other one while that one is down, and either
node is killed at random (CHAOS_KILLS, 12 in CI). At the end:

- every callback that got a 2xx is stored, exactly once: one event per
  distinct callback, and every 2xx for it named that event;
- every order ends in the status the rules say (paid; the later
  cancellations change nothing), every delivery done or skipped, none dead;
- each order has exactly one bridge note, and its stock went down once.

The faulty-shop test makes the simulated WooCommerce fail instead.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from bridge.config import StorageConfig
from bridge_simulators.woocommerce import WooCommerceSimulator

from daemon import MARKER, Bridge
from engines import mariadb_settings
from mariadb import MariaDB
from support import callback_body, signed_headers

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CHAOS_SEED", "7"))
ORDERS = int(os.environ.get("CHAOS_ORDERS", "120"))
FIRST_ORDER = 5000
KEY, SECRET = "ck_chaos", "cs_chaos"

# Each request to the shop gives up after this long, and a delivery's lease
# lasts 4 * timeout_seconds + 30 s (`DeliveryWorker._lease_seconds`): 32 s.
# On MySQL that is how long a killed node's deliveries wait before a node
# takes them over (no node frees another's lease, not even a restarted
# one), so it bounds the wait after the last kill, which is most of the
# MariaDB variants' run time. The simulated shop answers in 10 ms (100 ms
# in the two-node test).
DELIVERY = {"timeout_seconds": 0.5, "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.5}
LEASE_SECONDS = 4 * DELIVERY["timeout_seconds"] + 30


def kills(default: int) -> int:
    return int(os.environ.get("CHAOS_KILLS", str(default)))


@pytest.fixture
async def shop() -> AsyncIterator[WooCommerceSimulator]:
    async with WooCommerceSimulator(latency=0.01) as simulator:
        simulator.add_key(KEY, SECRET)
        simulator.add_product(10, "Chaos Widget", stock=10_000)
        for order_id in range(FIRST_ORDER, FIRST_ORDER + ORDERS):
            simulator.add_order(order_id, items=[(10, 1)])
        yield simulator


@dataclass
class Traffic:
    """Per order, its callbacks in the order Cryptum sends them; what the bridge answered."""

    by_order: dict[int, list[bytes]]
    # Each distinct callback body: the event ids its 2xx answers named.
    acknowledged: dict[bytes, set[int]] = field(default_factory=dict)

    @classmethod
    def planned(cls, rng: random.Random, prefix: str) -> Traffic:
        """A confirmation, sometimes sent twice (Cryptum's own retry), then a cancellation."""
        by_order: dict[int, list[bytes]] = {}
        for order_id in range(FIRST_ORDER, FIRST_ORDER + ORDERS):
            payment, woo_order_id = f"{prefix}-{order_id}", str(order_id)
            confirmed = callback_body(order_id=payment, woo_order_id=woo_order_id)
            cancelled = callback_body(
                order_id=payment, woo_order_id=woo_order_id, status="cancelled"
            )
            twice = rng.random() < 0.3
            by_order[order_id] = (
                [confirmed, confirmed, cancelled] if twice else [confirmed, cancelled]
            )
        return cls(by_order)

    async def pour(
        self, nodes: Sequence[Bridge], rng: random.Random, *, spread_seconds: float = 0.0
    ) -> None:
        """Send everything, each order's callbacks in turn, each order from a random moment
        within `spread_seconds`; returns once every callback got its 2xx."""
        connector = aiohttp.TCPConnector(limit=32, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def per_order(callbacks: list[bytes], start: float) -> None:
                await asyncio.sleep(start)
                for body in callbacks:
                    await self._send(session, nodes, rng.randrange(len(nodes)), body)
                    await asyncio.sleep(rng.random() * 0.2)

            senders = [
                per_order(callbacks, rng.random() * spread_seconds)
                for callbacks in self.by_order.values()
            ]
            await asyncio.wait_for(asyncio.gather(*senders), timeout=180)

    async def _send(
        self, session: aiohttp.ClientSession, nodes: Sequence[Bridge], node: int, body: bytes
    ) -> None:
        while True:  # like Cryptum: until a 2xx comes back
            try:
                async with session.post(
                    f"{nodes[node].url}/callbacks/cryptum",
                    data=body,
                    headers=signed_headers(body),
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as response:
                    if response.status == 200:
                        payload = await response.json()
                        self.acknowledged.setdefault(body, set()).add(int(payload["event_id"]))
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            node = (node + 1) % len(nodes)  # that node is down: the other one, if any
            await asyncio.sleep(0.05)


async def kill_and_restart(
    nodes: Sequence[Bridge],
    rng: random.Random,
    *,
    count: int,
    pause: tuple[float, float],
    down: float = 0.0,
) -> None:
    """`kill -9` a node `count` times, at random moments; each is restarted after up to `down` s.

    Every node is among the victims; the rest are chosen at random.
    """
    victims = list(range(len(nodes))) + [rng.randrange(len(nodes)) for _ in range(count)]
    victims = victims[:count]
    rng.shuffle(victims)
    for victim in victims:
        await asyncio.sleep(pause[0] + rng.random() * (pause[1] - pause[0]))
        bridge = nodes[victim]
        assert bridge.daemon is not None
        bridge.daemon.signal(signal.SIGKILL)
        assert await bridge.daemon.finished() == -signal.SIGKILL
        await asyncio.sleep(rng.random() * down)  # meanwhile the senders turn to another node
        await bridge.started()


async def settled(bridge: Bridge, timeout: float) -> None:
    """Wait until no delivery is pending."""
    deadline = asyncio.get_running_loop().time() + timeout
    while bridge.pending() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    assert bridge.pending() == 0


def interrupted(bridge: Bridge) -> int:
    """Deliveries finished after a kill cut one of their attempts short.

    An attempt that ends records an outcome (a retry sets `last_error`); one
    cut short leaves only the claim's count behind, for the next claim to add to.
    """
    (row,) = bridge.rows(
        "SELECT count(*) AS n FROM deliveries WHERE attempts > 1 AND last_error IS NULL"
    )
    return int(row["n"])


def resumed(shop: WooCommerceSimulator) -> int:
    """Plans saved by an attempt cut short, found applied by a later one, which then looks
    for their note (GET .../notes) before it finishes them."""
    return sum(
        1 for r in shop.requests if r.method == "GET" and r.path.endswith("/notes") and r.status
    )


def check_everything_once(bridge: Bridge, shop: WooCommerceSimulator, traffic: Traffic) -> None:
    """Stored once, applied once, noted once, in the status the rules give."""
    events = {
        row["id"]: row for row in bridge.rows("SELECT id, cryptum_order_id, status FROM events")
    }
    # One event per distinct callback, and every 2xx for a callback named that one.
    distinct = {body for callbacks in traffic.by_order.values() for body in callbacks}
    assert set(traffic.acknowledged) == distinct
    assert all(len(ids) == 1 for ids in traffic.acknowledged.values()), "a callback stored twice"
    assert {next(iter(ids)) for ids in traffic.acknowledged.values()} == set(events)
    assert len(events) == len(distinct) == 2 * ORDERS

    deliveries = bridge.rows("SELECT event_id, state FROM deliveries")
    assert len(deliveries) == len(events)
    states = Counter((events[d["event_id"]]["status"], d["state"]) for d in deliveries)
    assert states == {("confirmed", "done"): ORDERS, ("cancelled", "skipped"): ORDERS}
    applied = bridge.rows("SELECT cryptum_order_id, status FROM applied_payments")
    assert Counter(row["status"] for row in applied) == {"confirmed": ORDERS, "cancelled": ORDERS}

    for order_id in range(FIRST_ORDER, FIRST_ORDER + ORDERS):
        assert shop.orders[order_id].status == "processing", order_id
        notes = [note.note for note in shop.notes(order_id)]
        bridge_notes = [note for note in notes if MARKER in note]
        assert len(bridge_notes) == 1, (order_id, bridge_notes)
        stock = [note for note in notes if note.startswith("Stock levels")]
        assert len(stock) == 1 and "reduced" in stock[0], (order_id, stock)
    assert shop.products[10].stock == 10_000 - ORDERS


async def test_nothing_acknowledged_is_lost_and_nothing_is_applied_twice(
    tmp_path: Path, shop: WooCommerceSimulator, storage_settings: StorageConfig
) -> None:
    rng = random.Random(SEED)
    traffic = Traffic.planned(rng, "c")
    bridge = await Bridge(
        tmp_path, shop, key=KEY, secret=SECRET, storage=storage_settings, delivery=DELIVERY
    ).started()
    try:
        await asyncio.gather(
            traffic.pour([bridge], rng),
            kill_and_restart([bridge], rng, count=kills(20), pause=(0.2, 0.6)),
        )
        # On MySQL the last killed process's leases run out first.
        await settled(bridge, timeout=LEASE_SECONDS + 60)
    finally:
        assert await bridge.stopped() == 0

    cut_short = interrupted(bridge)
    # Shown with -s: what the kills hit, to compare runs and seeds.
    print(
        f"\nchaos: {len(bridge.daemons) - 1} kills, {cut_short} deliveries cut short,"
        f" {resumed(shop)} saved plans resumed"
    )
    assert cut_short > 0, "no kill landed in the middle of a delivery"
    check_everything_once(bridge, shop, traffic)


@pytest.fixture
def one_database(mariadb: MariaDB) -> StorageConfig:
    return mariadb_settings(mariadb)


async def test_two_nodes_on_one_database_killed_at_random_apply_everything_once(
    tmp_path: Path, shop: WooCommerceSimulator, one_database: StorageConfig
) -> None:
    rng = random.Random(SEED)
    traffic = Traffic.planned(rng, "n")
    count = kills(12)
    # Slower answers keep deliveries in flight on both nodes while callbacks
    # trickle in, so that most kills cut some short.
    shop.latency = 0.1
    nodes = [
        await Bridge(
            tmp_path / name, shop, key=KEY, secret=SECRET, storage=one_database, delivery=DELIVERY
        ).started()
        for name in ("node-a", "node-b")
    ]
    try:
        # Callbacks keep arriving over about as long as the kills take.
        await asyncio.gather(
            traffic.pour(nodes, rng, spread_seconds=count * 1.0),
            kill_and_restart(nodes, rng, count=count, pause=(0.3, 1.0), down=0.5),
        )
        await settled(nodes[0], timeout=LEASE_SECONDS + 60)
    finally:
        for node in nodes:
            assert await node.stopped() == 0

    cut_short = interrupted(nodes[0])
    print(
        f"\nchaos, two nodes: {count} kills (a: {len(nodes[0].daemons) - 1}),"
        f" {cut_short} deliveries cut short, {resumed(shop)} saved plans resumed;"
        " callbacks accepted / deliveries applied per node: "
        + ", ".join(
            f"{len(node.logged('callback.accepted', every_run=True))}"
            f" / {len(node.logged('delivery.applied', every_run=True))}"
            for node in nodes
        )
    )
    # Both nodes took callbacks and delivered, over their runs, so neither did it all.
    for node in nodes:
        assert node.logged("callback.accepted", every_run=True), node.config_path
        assert node.logged("delivery.applied", every_run=True), node.config_path
    assert len(nodes[0].daemons) + len(nodes[1].daemons) == count + 2
    assert cut_short > 0, "no kill landed in the middle of a delivery"
    check_everything_once(nodes[0], shop, traffic)


async def test_a_faulty_shop_gets_everything_once_when_it_recovers(
    tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    # On SQLite only: the faults are the shop's, and what the bridge does
    # about them (the worker's retries) is the same code on either engine.
    rng = random.Random(SEED)
    bridge = await Bridge(tmp_path, shop, key=KEY, secret=SECRET, delivery=DELIVERY).started()
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
        await settled(bridge, timeout=120)
    finally:
        stop_faults.set()
        assert await bridge.stopped() == 0

    assert faults > 50
    assert bridge.rows("SELECT count(*) AS n FROM deliveries WHERE state = 'dead'") == [{"n": 0}]
    for order_id in range(FIRST_ORDER, FIRST_ORDER + ORDERS):
        assert shop.orders[order_id].status == "processing", order_id
        notes = [note.note for note in shop.notes(order_id) if MARKER in note.note]
        assert len(notes) == 1, (order_id, notes)
    assert shop.products[10].stock == 10_000 - ORDERS
