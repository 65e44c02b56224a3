"""The Cryptum API client against the simulated Cryptum: reads, listings, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.cryptum import CryptumClient
from bridge.upstream import FailureKind, UpstreamFailure
from bridge_simulators.cryptum import CryptumSimulator

STORE = "store-under-test"


@pytest.fixture
async def cryptum() -> AsyncIterator[CryptumSimulator]:
    async with CryptumSimulator() as simulator:
        simulator.add_store(STORE, api_key="right-key", webhook_secret="s")
        yield simulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def client(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession, key: str = "right-key"
) -> CryptumClient:
    assert cryptum.base_url is not None
    return CryptumClient(base_url=cryptum.base_url, api_key=key, session=session, timeout_seconds=2)


async def test_reads_an_order(cryptum: CryptumSimulator, session: aiohttp.ClientSession) -> None:
    created = cryptum.create_order(
        store_id=STORE, ecommerce_order_id="11", total="20.50", callback_url="http://127.0.0.1:9/"
    )
    cryptum.set_status(created.id, "confirmed", transactions=[("CELO", "0xabc")])
    order = await client(cryptum, session).get_order(created.id)
    assert (order.id, order.ecommerce_order_id, order.payment_status) == (
        created.id,
        "11",
        "confirmed",
    )
    assert (order.order_total, order.order_currency, order.store_id) == ("20.50", "USD", STORE)
    assert [(t.protocol, t.hash) for t in order.transactions or []] == [("CELO", "0xabc")]


async def test_lists_recent_orders_in_one_status(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    ids = {}
    for woo_id, status in [("1", "confirmed"), ("2", "pending"), ("3", "failed")]:
        created = cryptum.create_order(
            store_id=STORE,
            ecommerce_order_id=woo_id,
            total="1.00",
            callback_url="http://127.0.0.1:9/",
        )
        if status != "pending":
            cryptum.set_status(created.id, status)
        ids[woo_id] = created.id
    since = datetime.now(UTC) - timedelta(hours=1)
    page = await client(cryptum, session).list_orders(
        store_id=STORE, payment_status="failed", since=since
    )
    assert [order.ecommerce_order_id for order in page.orders] == ["3"]
    assert page.total == 1
    # A listed order names its store by id alone, and (as documented) not its status.
    assert page.orders[0].store_id == STORE
    assert page.orders[0].payment_status is None
    (query,) = [r.query for r in cryptum.api_requests if r.path == "/plugins/orders/"]
    assert query["paymentStatus"] == "failed" and query["storeId"] == STORE
    later = await client(cryptum, session).list_orders(
        store_id=STORE, payment_status="confirmed", since=datetime.now(UTC) + timedelta(hours=1)
    )
    assert later.orders == []


async def test_walks_every_page_of_a_status(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    for number in range(1, 8):
        created = cryptum.create_order(
            store_id=STORE,
            ecommerce_order_id=str(number),
            total="1.00",
            callback_url="http://127.0.0.1:9/",
        )
        cryptum.set_status(created.id, "confirmed")
    since = datetime.now(UTC) - timedelta(hours=1)
    listed = [
        order.ecommerce_order_id
        async for order in client(cryptum, session).orders_in_status(
            store_id=STORE, payment_status="confirmed", since=since, page_size=3
        )
    ]
    assert sorted(listed, key=int) == [str(n) for n in range(1, 8)]
    offsets = [r.query["offset"] for r in cryptum.api_requests if r.path == "/plugins/orders/"]
    assert offsets == ["0", "3", "6"]


QUERIES = web.AppKey("queries", list[dict[str, str]])


def listing_server(pages: list[dict[str, Any]]) -> web.Application:
    """An order list that answers `pages` in turn, whatever it is asked, recording the queries."""
    app = web.Application()
    app[QUERIES] = []

    async def listing(request: web.Request) -> web.Response:
        app[QUERIES].append(dict(request.query))
        return web.json_response(pages[min(len(app[QUERIES]), len(pages)) - 1])

    app.router.add_get("/plugins/orders/", listing)
    return app


def client_of(server: Any, session: aiohttp.ClientSession) -> CryptumClient:
    """A client of the test server `server`, whose API lives under /plugins."""
    return CryptumClient(
        base_url=str(server.make_url("/plugins")), api_key="k", session=session, timeout_seconds=2
    )


def entry(number: int, store: Any = STORE) -> dict[str, Any]:
    return {"id": f"c-{number}", "ecommerceOrderId": str(number), "store": store}


async def test_a_short_page_does_not_end_the_walk_before_the_total(
    aiohttp_server: Any, session: aiohttp.ClientSession
) -> None:
    # An API that pages by two whatever limit it is given: the total decides.
    pages = [
        {"total": 5, "orders": [entry(1), entry(2)]},
        {"total": 5, "orders": [entry(3), entry(4, {"id": STORE, "name": "x"})]},
        {"total": 5, "orders": [entry(5)]},
        {"total": 5, "orders": [entry(6)]},  # never asked for
    ]
    server = listing_server(pages)
    running = await aiohttp_server(server)
    api = client_of(running, session)
    since = datetime.now(UTC)
    listed = [
        (order.id, order.store_id)
        async for order in api.orders_in_status(
            store_id=STORE, payment_status="confirmed", since=since
        )
    ]
    assert listed == [(f"c-{n}", STORE) for n in range(1, 6)]
    assert [q["offset"] for q in server[QUERIES]] == ["0", "2", "4"]
    assert all(q["limit"] == "100" and q["withCount"] == "true" for q in server[QUERIES])


async def test_without_a_total_a_short_page_is_the_last(
    aiohttp_server: Any, session: aiohttp.ClientSession
) -> None:
    pages = [{"orders": [entry(n) for n in range(1, 4)]}, {"orders": [entry(9)]}]
    server = listing_server(pages)
    running = await aiohttp_server(server)
    api = client_of(running, session)
    listed = [
        order.id
        async for order in api.orders_in_status(
            store_id=STORE, payment_status="failed", since=datetime.now(UTC), page_size=3
        )
    ]
    # A full page, then a short one: the walk asks twice and stops.
    assert listed == ["c-1", "c-2", "c-3", "c-9"]
    assert len(server[QUERIES]) == 2


async def test_an_order_id_stays_one_path_segment(
    aiohttp_server: Any, session: aiohttp.ClientSession
) -> None:
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"message": "no"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    running = await aiohttp_server(app)
    api = client_of(running, session)
    for order_id in ("../orders/?storeId=x", "..", "a/b#c"):
        with pytest.raises(UpstreamFailure):
            await api.get_order(order_id)
    assert seen == [
        "/plugins/orders/..%2Forders%2F%3FstoreId%3Dx",
        "/plugins/orders/%2E%2E",
        "/plugins/orders/a%2Fb%23c",
    ]


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda c: None, FailureKind.ORDER_NOT_FOUND),
        (lambda c: c.fail_next(1, status=503), FailureKind.TRANSIENT),
        (lambda c: setattr(c, "down", True), FailureKind.TRANSIENT),
    ],
    ids=["missing", "503", "down"],
)
async def test_failures_are_classified(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession, setup: object, kind: FailureKind
) -> None:
    setup(cryptum)  # type: ignore[operator]
    with pytest.raises(UpstreamFailure) as caught:
        await client(cryptum, session).get_order("no-such-order")
    assert caught.value.kind is kind


async def test_a_wrong_key_is_a_config_problem(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(UpstreamFailure) as caught:
        await client(cryptum, session, key="wrong-key").get_order("any")
    assert caught.value.kind is FailureKind.CONFIG
    assert "cryptum_api_key" in caught.value.reason
    assert "wrong-key" not in caught.value.reason
