"""Reconciliation against a Cryptum API the test scripts, in this process on a virtual clock.

The simulated Cryptum never lists another store's orders to a store's key,
so a small server on 127.0.0.1 stands in for an API that does.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge.app import create_app
from bridge.config import parse_config
from bridge.reconcile import RECONCILED_STATUSES
from bridge.state import RECONCILER

from payment_world import VirtualClock
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
