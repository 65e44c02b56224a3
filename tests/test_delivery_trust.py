"""What a delivery never does, whatever the config says now: apply an unverified claim.

The worker runs in this process (`run_due`, no loop, no sleeping) against a
real SQLite file and the simulated shop on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import build_clients
from bridge.config import Config, parse_config
from bridge.delivery import DeliveryWorker
from bridge.storage import EventFacts, NewEvent, SqliteStorage
from bridge_simulators.woocommerce import WooCommerceSimulator

from support import MAIN_STORE_ID, config_document

KEY, SECRET = "ck_trust_key", "cs_trust_secret"


@pytest.fixture
async def shop() -> AsyncIterator[WooCommerceSimulator]:
    async with WooCommerceSimulator() as simulator:
        simulator.add_key(KEY, SECRET)
        simulator.seed_fixture_shop()
        yield simulator


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    opened = await SqliteStorage.open(tmp_path / "bridge.sqlite3")
    yield opened
    await opened.close()


def config(tmp_path: Path, shop: WooCommerceSimulator, **store: Any) -> Config:
    document = config_document(tmp_path / "bridge.sqlite3")
    main = document["stores"][0] | store
    main["woocommerce"] = {"url": shop.base_url, "consumer_key": KEY, "consumer_secret": SECRET}
    document["stores"] = [main]
    return parse_config(document, base_dir=tmp_path)


def unsigned_event(woo_order_id: str) -> NewEvent:
    body = json.dumps(
        {
            "status": "confirmed",
            "orderId": "c-unsigned",
            "ecommerceOrderId": woo_order_id,
            "storeId": MAIN_STORE_ID,
            "transactions": [{"protocol": "CELO", "hash": "0xfeed"}],
        }
    ).encode()
    return NewEvent(
        store="main",
        body_sha256=hashlib.sha256(body).digest(),
        source="callback",
        signature_form="unsigned",  # accepted while the store had allow_unsigned
        request_id=None,
        cryptum_order_id="c-unsigned",
        woo_order_id=woo_order_id,
        status="confirmed",
        payload=body,
        facts=EventFacts(transactions=(("CELO", "0xfeed"),)),
    )


async def run_worker(config: Config, database: SqliteStorage) -> None:
    async with aiohttp.ClientSession() as session:
        clients, cryptum_clients = build_clients(config, session)
        worker = DeliveryWorker(config, database, clients, cryptum_clients)
        await worker.start(run_loop=False)
        await worker.run_due()


async def test_an_unsigned_callback_is_never_applied_once_the_api_key_is_gone(
    tmp_path: Path, shop: WooCommerceSimulator, database: SqliteStorage
) -> None:
    await database.record_event(unsigned_event("11"))
    # Later the store loses its API key and allow_unsigned: no one can confirm it now.
    now_config = config(tmp_path, shop)
    assert now_config.stores[0].cryptum_api_key is None
    await run_worker(now_config, database)
    (dead,) = await database.list_deliveries(state="dead")
    assert dead.outcome == (
        "accepted without a signature, and the store has no Cryptum API key "
        "to confirm it with: never applied unconfirmed"
    )
    assert shop.orders[11].status == "pending"
    assert shop.requests == []  # the shop was never even asked

    # `dead-letter retry --all` runs it again: it stays dead, with the reason.
    assert await database.requeue(state="dead", now=0.0) == 1
    await run_worker(now_config, database)
    (again,) = await database.list_deliveries(state="dead")
    assert "accepted without a signature" in (again.outcome or "")
    assert shop.orders[11].status == "pending" and shop.requests == []


async def test_a_signed_callback_without_an_api_key_is_applied(
    tmp_path: Path, shop: WooCommerceSimulator, database: SqliteStorage
) -> None:
    # The same callback, signed: the signature is the check for a store without a key.
    await database.record_event(unsigned_event("12")._replace(signature_form="json"))
    await run_worker(config(tmp_path, shop), database)
    # Without an API key, the callback's own transactions are the payment's.
    assert (shop.orders[12].status, shop.orders[12].transaction_id) == ("processing", "0xfeed")


async def test_an_older_event_without_facts_is_paid_with_its_bodys_transactions(
    tmp_path: Path, shop: WooCommerceSimulator, database: SqliteStorage
) -> None:
    await database.record_event(unsigned_event("12")._replace(signature_form="json"))
    with sqlite3.connect(tmp_path / "bridge.sqlite3") as connection:
        connection.execute("UPDATE events SET facts = NULL")
    await run_worker(config(tmp_path, shop), database)
    assert (shop.orders[12].status, shop.orders[12].transaction_id) == ("processing", "0xfeed")
