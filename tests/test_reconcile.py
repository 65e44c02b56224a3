"""Reconciliation against a Cryptum API the test scripts, in this process on a virtual clock.

The simulated Cryptum never lists another store's orders to a store's key,
so a small server on 127.0.0.1 stands in for an API that does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.app import create_app
from bridge.app_keys import RECONCILER
from bridge.config import Config, parse_config
from bridge.cryptum import CryptumClient
from bridge.reconcile import RECONCILE_TASK, RECONCILED_STATUSES, Reconciler
from bridge.storage import SqliteStorage, open_storage

from engines import mariadb_settings, storage_document
from mariadb import MariaDB
from payment_world import LOOKBACK_HOURS, RECONCILE_SECONDS, START, VirtualClock, World
from support import CONFIGURED_SECRETS, MAIN_STORE_ID, config_document

API_KEY = "cryptum-api-key-reconcile"
CONFIGURED_SECRETS.add(API_KEY)
OTHER_STORE_ID = "5f1c2d3e-other-4a5b-9c8d-7e6f5a4b3c2d"


def listing_api(
    listed: dict[str, list[dict[str, Any]]], asked: list[dict[str, str]]
) -> web.Application:
    """`GET /plugins/orders/` answering `listed[paymentStatus]` whatever the store asked for."""

    async def orders(request: web.Request) -> web.Response:
        asked.append(dict(request.query))
        entries = listed.get(request.query["paymentStatus"], [])
        return web.json_response({"total": len(entries), "orders": entries})

    app = web.Application()
    app.router.add_get("/plugins/orders/", orders)
    return app


def entry(cryptum_order_id: str, woo_order_id: str, store_id: str) -> dict[str, Any]:
    """A list entry as documented: the store by its id alone, no payment status."""
    return {"id": cryptum_order_id, "ecommerceOrderId": woo_order_id, "store": store_id}


def two_listing_stores(tmp_path: Path, first_api: str, second_api: str) -> Config:
    """The two stores of `config_document`, each with an API key, listing from its own API."""
    document = config_document(tmp_path / "bridge.sqlite3")
    first = document["stores"][0] | {"cryptum_api_key": API_KEY, "cryptum_api_url": first_api}
    second = first | {
        "name": "second",
        "cryptum_store_id": OTHER_STORE_ID,
        "cryptum_api_url": second_api,
    }
    document["stores"] = [first, second]
    return parse_config(document, base_dir=tmp_path)


def api_clients(config: Config, session: aiohttp.ClientSession) -> dict[str, CryptumClient]:
    return {
        store.name: CryptumClient(
            base_url=str(store.cryptum_api_url),
            api_key=API_KEY,
            session=session,
            timeout_seconds=5,
        )
        for store in config.stores
    }


async def test_a_listed_order_of_another_store_is_never_enqueued(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    asked: list[dict[str, str]] = []
    listed = {
        "confirmed": [
            entry("c-ours", "12", MAIN_STORE_ID),
            entry("c-theirs", "11", OTHER_STORE_ID),
        ]
    }
    api = await aiohttp_server(listing_api(listed, asked))
    database = tmp_path / "bridge.sqlite3"
    document = config_document(database)
    document["stores"][0] |= {
        "cryptum_api_key": API_KEY,
        "cryptum_api_url": str(api.make_url("/plugins")),
    }
    config = parse_config(document, base_dir=tmp_path)
    client = await aiohttp_client(create_app(config, clock=VirtualClock(), background=False))

    assert await client.app[RECONCILER].run_once() == 1
    # One listing per status, each for our store only.
    assert {query["storeId"] for query in asked} == {MAIN_STORE_ID}
    assert [query["paymentStatus"] for query in asked] == list(RECONCILED_STATUSES)
    with sqlite3.connect(database) as connection:
        events = connection.execute(
            "SELECT store, source, cryptum_order_id, woo_order_id, status FROM events"
        ).fetchall()
    assert events == [("main", "reconcile", "c-ours", "12", "confirmed")]

    # Nor on a later pass.
    assert await client.app[RECONCILER].run_once() == 0


# Against the simulated Cryptum and shop, as in payment_world ------------------------

TX = "0x7ec0"


async def test_a_payment_whose_callback_never_came_is_found_and_paid_once(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    cryptum_id = world.checkout(11)
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])

    assert await world.reconciler.run_once() == 1
    (event,) = world.rows("SELECT * FROM events")
    (enqueued,) = [line for line in logs() if line["event"] == "reconcile.enqueued"]
    assert {key: enqueued[key] for key in ("store", "event_id", "status")} == {
        "store": "main",
        "event_id": event["id"],
        "status": "confirmed",
    }
    assert (enqueued["cryptum_order_id"], enqueued["woo_order_id"]) == (cryptum_id, "11")
    assert (event["source"], event["signature_form"], event["status"]) == (
        "reconcile",
        None,
        "confirmed",
    )
    assert (event["cryptum_order_id"], event["woo_order_id"]) == (cryptum_id, "11")
    # What the API listed, as the event's body: nothing made up to look like a callback.
    assert json.loads(event["payload"]) == {
        "orderId": cryptum_id,
        "ecommerceOrderId": "11",
        "storeId": MAIN_STORE_ID,
        "status": "confirmed",
    }

    assert await world.worker.run_due() == 1
    order = world.shop.orders[11]
    assert (order.status, order.transaction_id) == ("processing", TX)
    # The delivery read the event as a callback: its message and the Cryptum id are the meta.
    assert world.meta(11)["_cryptum_checkout_order_transactions_message"] == (
        "found by reconciliation"
    )
    assert world.meta(11)["_cryptum_order_id"] == cryptum_id
    assert len(world.bridge_notes(11)) == 1
    assert world.rows("SELECT cryptum_order_id, status FROM applied_payments") == [
        {"cryptum_order_id": cryptum_id, "status": "confirmed"}
    ]

    # Found again on the next pass, and by the callback arriving at last: nothing more.
    world.clock.now += RECONCILE_SECONDS
    assert await world.reconciler.run_once() == 0
    assert await world.post(world.callback(cryptum_id, "confirmed", tx=TX)) == 200
    await world.worker.run_due()
    assert len(world.bridge_notes(11)) == 1
    assert world.shop.orders[11].status == "processing"


async def test_each_reconciled_status_is_found(world: World) -> None:
    ids = {status: world.checkout(woo_id) for woo_id, status in enumerate(RECONCILED_STATUSES, 21)}
    for status, cryptum_id in ids.items():
        world.cryptum.set_status(cryptum_id, status)
    pending = world.checkout(30)  # not a status reconciliation acts on

    assert await world.reconciler.run_once() == len(RECONCILED_STATUSES)
    found = world.rows("SELECT cryptum_order_id, status FROM events ORDER BY woo_order_id")
    assert found == [{"cryptum_order_id": ids[s], "status": s} for s in RECONCILED_STATUSES]
    assert pending not in {row["cryptum_order_id"] for row in found}


async def test_a_payment_older_than_the_lookback_is_not_listed(world: World) -> None:
    cryptum_id = world.checkout(11)
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    world.clock.now += LOOKBACK_HOURS * 3600 + 60

    assert await world.reconciler.run_once() == 0
    assert world.rows("SELECT * FROM events") == []


async def test_a_payment_a_pending_delivery_will_apply_is_left_to_it(world: World) -> None:
    cryptum_id = world.checkout(11)
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    assert await world.post(world.callback(cryptum_id, "confirmed", tx=TX)) == 200

    assert await world.reconciler.run_once() == 0
    assert len(world.rows("SELECT * FROM events")) == 1


async def test_a_status_found_again_after_its_delivery_applied_another_is_run_again(
    world: World,
) -> None:
    cryptum_id = world.checkout(11)
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    assert await world.reconciler.run_once() == 1
    # Before the delivery runs, the API says the payment failed; after the
    # recheck the API wins and "failed" is what the delivery applies.
    world.cryptum.set_status(cryptum_id, "failed")
    while world.rows("SELECT state FROM deliveries") != [{"state": "done"}]:
        await world.worker.run_due()
        world.clock.now += 60
    assert world.shop.orders[11].status == "failed"

    # The API settles on confirmed: the event found before is delivered again.
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    assert await world.reconciler.run_once() == 1
    assert len(world.rows("SELECT * FROM events")) == 1  # the same event, run again
    await world.worker.run_due()
    assert world.shop.orders[11].status == "processing"
    assert world.shop.orders[11].transaction_id == TX
    assert len(world.bridge_notes(11)) == 2  # failed, then paid


# Against a scripted listing ---------------------------------------------------------


async def scripted_reconciler(
    aiohttp_server: Any,
    aiohttp_client: Any,
    tmp_path: Path,
    listed: dict[str, list[dict[str, Any]]],
) -> tuple[Any, list[dict[str, str]]]:
    asked: list[dict[str, str]] = []
    api = await aiohttp_server(listing_api(listed, asked))
    document = config_document(tmp_path / "bridge.sqlite3")
    document["stores"][0] |= {
        "cryptum_api_key": API_KEY,
        "cryptum_api_url": str(api.make_url("/plugins")),
    }
    config = parse_config(document, base_dir=tmp_path)
    client = await aiohttp_client(create_app(config, clock=VirtualClock(), background=False))
    return client.app[RECONCILER], asked


async def test_an_order_listed_in_another_status_than_asked_waits_for_the_next_pass(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path
) -> None:
    moved = entry("c-moved", "12", MAIN_STORE_ID) | {"paymentStatus": "cancelled"}
    stays = entry("c-stays", "13", MAIN_STORE_ID) | {"paymentStatus": "confirmed"}
    reconciler, _ = await scripted_reconciler(
        aiohttp_server, aiohttp_client, tmp_path, {"confirmed": [moved, stays]}
    )

    assert await reconciler.run_once() == 1
    with sqlite3.connect(tmp_path / "bridge.sqlite3") as connection:
        found = connection.execute("SELECT cryptum_order_id, status FROM events").fetchall()
    assert found == [("c-stays", "confirmed")]


async def test_an_order_of_no_woocommerce_order_is_logged_and_skipped(
    aiohttp_server: Any,
    aiohttp_client: Any,
    tmp_path: Path,
    logs: Callable[[], list[dict[str, Any]]],
) -> None:
    listed = {"confirmed": [entry("c-elsewhere", "INV-7", MAIN_STORE_ID)]}
    reconciler, _ = await scripted_reconciler(aiohttp_server, aiohttp_client, tmp_path, listed)

    assert await reconciler.run_once() == 0
    (warning,) = [line for line in logs() if line["event"] == "reconcile.unusable_order"]
    assert (warning["store"], warning["cryptum_order_id"]) == ("main", "c-elsewhere")
    with sqlite3.connect(tmp_path / "bridge.sqlite3") as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone() == (0,)


async def test_an_unreachable_api_is_logged_and_the_other_stores_still_reconciled(
    aiohttp_server: Any, tmp_path: Path, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    async def unavailable(_: web.Request) -> web.Response:
        return web.Response(status=503)

    down = web.Application()
    down.router.add_get("/plugins/orders/", unavailable)
    down_api = await aiohttp_server(down)
    asked: list[dict[str, str]] = []
    listed = {"confirmed": [entry("c-1", "12", OTHER_STORE_ID)]}
    up_api = await aiohttp_server(listing_api(listed, asked))
    config = two_listing_stores(
        tmp_path, str(down_api.make_url("/plugins")), str(up_api.make_url("/plugins"))
    )
    enqueued: list[None] = []
    async with (
        opened_database(tmp_path / "bridge.sqlite3") as database,
        aiohttp.ClientSession() as session,
    ):
        clients = api_clients(config, session)
        reconciler = Reconciler(
            config, database, clients, on_enqueued=lambda: enqueued.append(None)
        )
        assert await reconciler.run_once() == 1
        assert enqueued == [None]  # the worker is woken once per pass that found something
        assert await reconciler.run_once() == 0
        assert enqueued == [None]

    failures = [line for line in logs() if line["event"] == "reconcile.failed"]
    # One per pass, the failing store named with the cause.
    assert [(line["store"], line["reason"]) for line in failures] == [
        ("main", "Cryptum API answered 503")
    ] * 2
    assert asked  # the second store was asked after the first failed


async def test_the_loop_passes_at_start_survives_a_crash_and_stops_mid_wait(
    aiohttp_server: Any, tmp_path: Path, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    asked: list[dict[str, str]] = []
    listed = {"confirmed": [entry("c-1", "12", MAIN_STORE_ID)]}
    api = await aiohttp_server(listing_api(listed, asked))
    document = config_document(tmp_path / "bridge.sqlite3")
    document["reconcile"] = {"interval_seconds": 1}
    config = parse_config(document, base_dir=tmp_path)
    wakeups: list[None] = []

    def wake_then_crash() -> None:
        wakeups.append(None)
        raise RuntimeError("the worker could not be woken")

    async with (
        opened_database(tmp_path / "bridge.sqlite3") as database,
        aiohttp.ClientSession() as session,
    ):
        client = CryptumClient(
            base_url=str(api.make_url("/plugins")),
            api_key=API_KEY,
            session=session,
            timeout_seconds=5,
        )
        reconciler = Reconciler(config, database, {}, on_enqueued=wake_then_crash)
        reconciler.start()  # no store has a key: nothing runs
        await asyncio.sleep(0.05)
        assert asked == []
        assert not reconciler.loop.running

        reconciler.reconfigure(config, {"main": client})
        await wait_for(lambda: len(asked) >= 2 * len(RECONCILED_STATUSES))
        assert wakeups == [None]  # the pass that found the payment, then a quiet one
        assert [line["event"] for line in logs()].count("reconcile.crashed") == 1

        await asyncio.wait_for(reconciler.stop(), timeout=0.5)  # not a whole interval
        passes = len(asked)
        await asyncio.sleep(1.2)
        assert len(asked) == passes


@contextlib.asynccontextmanager
async def opened_database(path: Path) -> AsyncIterator[SqliteStorage]:
    database = await SqliteStorage.open(path)
    try:
        yield database
    finally:
        await database.close()


async def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_payments_every_store_finds_are_counted(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    first_api = await aiohttp_server(
        listing_api({"confirmed": [entry("c-1", "12", MAIN_STORE_ID)]}, [])
    )
    second_api = await aiohttp_server(
        listing_api({"confirmed": [entry("c-2", "13", OTHER_STORE_ID)]}, [])
    )
    config = two_listing_stores(
        tmp_path, str(first_api.make_url("/plugins")), str(second_api.make_url("/plugins"))
    )
    async with (
        opened_database(tmp_path / "bridge.sqlite3") as database,
        aiohttp.ClientSession() as session,
    ):
        clients = api_clients(config, session)
        reconciler = Reconciler(config, database, clients, on_enqueued=lambda: None)
        assert await reconciler.run_once() == 2


async def test_the_lookback_is_counted_in_utc_whatever_the_machines_time_zone(
    aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    time.tzset()
    try:
        reconciler, asked = await scripted_reconciler(aiohttp_server, aiohttp_client, tmp_path, {})
        await reconciler.run_once()
    finally:
        monkeypatch.undo()
        time.tzset()
    # The virtual clock's start, less the 48 h lookback of the default config, in UTC.
    since = datetime.fromtimestamp(START - 48 * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {query["startDate"] for query in asked} == {since}


async def test_a_payment_found_again_after_its_delivery_ended_dead_waits_for_an_admin(
    world: World, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    cryptum_id = world.checkout(11)
    del world.shop.orders[11]  # the shop lost the order: its delivery ends dead
    world.cryptum.set_status(cryptum_id, "confirmed", transactions=[("POLYGON", TX)])
    assert await world.reconciler.run_once() == 1
    await world.worker.run_due()
    assert world.rows("SELECT state FROM deliveries") == [{"state": "dead"}]

    world.clock.now += RECONCILE_SECONDS
    assert await world.reconciler.run_once() == 0
    assert world.rows("SELECT state FROM deliveries") == [{"state": "dead"}]
    assert [line["event"] for line in logs()].count("reconcile.enqueued") == 1


async def test_a_reload_starts_no_loop_in_an_app_that_runs_none(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    api = await aiohttp_server(listing_api({}, []))
    document = config_document(tmp_path / "bridge.sqlite3")
    document["stores"][0] |= {
        "cryptum_api_key": API_KEY,
        "cryptum_api_url": str(api.make_url("/plugins")),
    }
    config = parse_config(document, base_dir=tmp_path)
    async with (
        opened_database(tmp_path / "bridge.sqlite3") as database,
        aiohttp.ClientSession() as session,
    ):
        client = CryptumClient(
            base_url=str(api.make_url("/plugins")),
            api_key=API_KEY,
            session=session,
            timeout_seconds=5,
        )
        reconciler = Reconciler(config, database, {}, on_enqueued=lambda: None)
        reconciler.reconfigure(config, {"main": client})
        assert not reconciler.loop.running
        reconciler.start()
        assert reconciler.loop.running
        await reconciler.stop()


async def test_on_a_shared_database_one_node_reconciles_and_another_takes_over(
    aiohttp_server: Any, tmp_path: Path, mariadb: MariaDB
) -> None:
    asked: list[dict[str, str]] = []
    api = await aiohttp_server(
        listing_api({"confirmed": [entry("c-1", "12", MAIN_STORE_ID)]}, asked)
    )
    document = config_document(tmp_path / "unused.sqlite3")
    document["storage"] = storage_document(mariadb_settings(mariadb))
    document["stores"] = [
        document["stores"][0]
        | {"cryptum_api_key": API_KEY, "cryptum_api_url": str(api.make_url("/plugins"))}
    ]
    config = parse_config(document, base_dir=tmp_path)
    clock = VirtualClock()
    first_node = await open_storage(config.storage, clock=clock)
    second_node = await open_storage(config.storage, clock=clock)
    try:
        async with aiohttp.ClientSession() as session:
            clients = api_clients(config, session)
            first = Reconciler(config, first_node, clients, on_enqueued=lambda: None, clock=clock)
            second = Reconciler(config, second_node, clients, on_enqueued=lambda: None, clock=clock)
            assert await first.run_once() == 1
            listings = len(asked)
            assert listings == len(RECONCILED_STATUSES)
            # The other node asks Cryptum nothing while the first holds the task ...
            clock.now += RECONCILE_SECONDS
            assert await second.run_once() == 0
            assert len(asked) == listings
            # ... and takes over once the first has stopped renewing it for two intervals.
            clock.now += RECONCILE_SECONDS + 61
            assert await second.run_once() == 0  # c-1 is known already
            assert len(asked) == 2 * listings
            assert not await first_node.hold_task_lease(RECONCILE_TASK, now=clock.now, seconds=1)
    finally:
        await first_node.close()
        await second_node.close()


async def test_a_node_that_stops_hands_reconciliation_over_at_once(
    tmp_path: Path, mariadb: MariaDB
) -> None:
    document = config_document(tmp_path / "unused.sqlite3")
    document["storage"] = storage_document(mariadb_settings(mariadb))
    config = parse_config(document, base_dir=tmp_path)
    clock = VirtualClock()
    first_node = await open_storage(config.storage, clock=clock)
    second_node = await open_storage(config.storage, clock=clock)
    try:
        # No store has an API key: the loop does not run, the lease is the point.
        stopping = Reconciler(config, first_node, {}, on_enqueued=lambda: None, clock=clock)
        assert await stopping.run_once() == 0
        assert not await second_node.hold_task_lease(RECONCILE_TASK, now=clock.now, seconds=60)
        stopping.start()
        await stopping.stop()
        assert await second_node.hold_task_lease(RECONCILE_TASK, now=clock.now, seconds=60)
    finally:
        await first_node.close()
        await second_node.close()
