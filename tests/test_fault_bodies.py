"""The bridge against failed answers that are not the service's JSON: proxy pages, empty, cut.

The simulators' `fail_next(body=...)` sends what a reverse proxy or a crashed
PHP sends. The clients must classify each as the failure it is (a 5xx or a
429 is worth a retry, whatever its body), and the delivery worker must retry
through them to a delivered payment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.config import WooCommerceConfig
from bridge.cryptum import CryptumClient
from bridge.reconcile import RECONCILED_STATUSES
from bridge.upstream import FailureKind, UpstreamFailure
from bridge.woocommerce import WooCommerceClient
from bridge_simulators import CryptumSimulator, WooCommerceSimulator

from daemon import Bridge, bridge_notes, wait_until
from support import MAIN_SECRET, MAIN_STORE_ID

KEY, SECRET = "ck_fault_bodies", "cs_fault_bodies"
API_KEY = "cryptum-api-key-fault-bodies"
# Shapes and statuses a proxy or PHP sends when WordPress or the API behind it fails.
BROKEN_ANSWERS = [
    ("html", 502),
    ("html", 503),
    ("html", 504),
    ("empty", 500),
    ("empty", 502),
    ("truncated", 500),
    ("truncated", 503),
]
BROKEN_IDS = [f"{shape}-{status}" for shape, status in BROKEN_ANSWERS]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


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
        yield simulator


def woo_client(shop: WooCommerceSimulator, session: aiohttp.ClientSession) -> WooCommerceClient:
    config = WooCommerceConfig.model_validate(
        {"url": shop.base_url, "consumer_key": KEY, "consumer_secret": SECRET}
    )
    return WooCommerceClient(config, session=session, timeout_seconds=2)


def cryptum_client(cryptum: CryptumSimulator, session: aiohttp.ClientSession) -> CryptumClient:
    assert cryptum.base_url is not None
    return CryptumClient(
        base_url=cryptum.base_url, api_key=API_KEY, session=session, timeout_seconds=2
    )


async def failure_of(call: Awaitable[Any]) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as caught:
        await call
    return caught.value


WooCall = Callable[[WooCommerceClient], Awaitable[Any]]
WOO_CALLS: dict[str, WooCall] = {
    "get_order": lambda woo: woo.get_order("11"),
    "update_order": lambda woo: woo.update_order("11", {"status": "processing"}),
    "add_note": lambda woo: woo.add_note("11", "Payment confirmed"),
    "list_notes": lambda woo: woo.list_notes("11"),
    "list_orders": lambda woo: woo.list_orders(per_page=1),
}


@pytest.mark.parametrize("call", list(WOO_CALLS))
@pytest.mark.parametrize(("shape", "status"), BROKEN_ANSWERS, ids=BROKEN_IDS)
async def test_the_woocommerce_client_retries_broken_answers(
    shop: WooCommerceSimulator,
    session: aiohttp.ClientSession,
    shape: Any,
    status: int,
    call: str,
) -> None:
    shop.fail_next(status=status, body=shape)
    failure = await failure_of(WOO_CALLS[call](woo_client(shop, session)))
    assert (failure.kind, failure.status, failure.service) == (
        FailureKind.TRANSIENT,
        status,
        "woocommerce",
    )
    assert (shop.orders[11].status, shop.notes(11)) == ("pending", [])
    assert (await WOO_CALLS[call](woo_client(shop, session))) is not None  # then it works


@pytest.mark.parametrize("shape", ["html", "empty", "truncated"])
async def test_a_429_keeps_its_retry_after_whatever_its_body(
    shop: WooCommerceSimulator, session: aiohttp.ClientSession, shape: Any
) -> None:
    shop.fail_next(status=429, retry_after=7, body=shape)
    failure = await failure_of(woo_client(shop, session).get_order("11"))
    assert (failure.kind, failure.status, failure.retry_after) == (FailureKind.TRANSIENT, 429, 7)


async def test_a_proxys_404_page_says_the_rest_api_is_not_found(
    shop: WooCommerceSimulator, session: aiohttp.ClientSession
) -> None:
    # No WordPress error code: not "order not found", which would dead-letter the payment.
    shop.fail_next(status=404, body="html")
    failure = await failure_of(woo_client(shop, session).get_order("11"))
    assert failure.kind is FailureKind.REJECTED
    assert "REST API not found" in failure.reason


CryptumCall = Callable[[CryptumClient, str], Awaitable[Any]]
CRYPTUM_CALLS: dict[str, CryptumCall] = {
    "get_order": lambda api, order_id: api.get_order(order_id),
    "list_orders": lambda api, _: api.list_orders(
        store_id=MAIN_STORE_ID,
        payment_status="confirmed",
        since=datetime(2026, 1, 1, tzinfo=UTC),
    ),
}


@pytest.mark.parametrize("call", list(CRYPTUM_CALLS))
@pytest.mark.parametrize(("shape", "status"), BROKEN_ANSWERS, ids=BROKEN_IDS)
async def test_the_cryptum_client_retries_broken_answers(
    cryptum: CryptumSimulator,
    session: aiohttp.ClientSession,
    shape: Any,
    status: int,
    call: str,
) -> None:
    order = cryptum.create_order(
        store_id=MAIN_STORE_ID,
        ecommerce_order_id="11",
        total="20.00",
        callback_url="http://127.0.0.1:9/",
    )
    cryptum.fail_next(status=status, body=shape)
    api = cryptum_client(cryptum, session)
    failure = await failure_of(CRYPTUM_CALLS[call](api, order.id))
    assert (failure.kind, failure.status, failure.service) == (
        FailureKind.TRANSIENT,
        status,
        "cryptum",
    )
    assert (await CRYPTUM_CALLS[call](api, order.id)) is not None  # then it works


@pytest.mark.parametrize("shape", ["html", "empty"])
async def test_a_404_that_is_not_cryptums_does_not_say_the_order_is_unknown(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession, shape: Any
) -> None:
    order = cryptum.create_order(
        store_id=MAIN_STORE_ID,
        ecommerce_order_id="11",
        total="20.00",
        callback_url="http://127.0.0.1:9/",
    )
    cryptum.fail_next(status=404, body=shape)
    failure = await failure_of(cryptum_client(cryptum, session).get_order(order.id))
    # Retried loudly (and shown in /readyz), never taken for Cryptum's "no such order".
    assert failure.kind is FailureKind.CONFIG
    assert "cryptum_api_url" in failure.reason


async def test_cryptums_own_404_still_says_the_order_is_unknown(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    failure = await failure_of(cryptum_client(cryptum, session).get_order("no-such-order"))
    assert failure.kind is FailureKind.ORDER_NOT_FOUND


# End to end: a real `cryptum-bridge serve` retrying through them ------------------------


@pytest.mark.slow
async def test_a_payment_is_delivered_through_broken_shop_answers(
    tmp_path: Path, shop: WooCommerceSimulator
) -> None:
    # One of each shape, on each stage: the read, the update and the note.
    shop.fail_next(status=502, body="html", method="GET")
    shop.fail_next(status=500, body="empty", method="PUT")
    shop.fail_next(status=500, body="truncated", method="POST")
    bridge = await Bridge(tmp_path, shop, key=KEY, secret=SECRET).started()
    try:
        answer = await bridge.send(order_id="broken-13", woo_order_id="13", status="confirmed")
        delivery = await bridge.settled(answer["event_id"])
        assert (delivery["state"], delivery["attempts"]) == ("done", 4)
        assert shop.orders[13].status == "processing"
        assert len(bridge_notes(shop, 13)) == 1
        faults = [(r.method, r.status) for r in shop.requests if r.fault == "fail"]
        assert faults == [("GET", 502), ("PUT", 500), ("POST", 500)]
    finally:
        assert await bridge.stopped() == 0


async def confirming_bridge(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> tuple[Bridge, str]:
    """A bridge confirming with the simulated API, and a confirmed payment for order 11."""
    assert cryptum.base_url is not None
    bridge = await Bridge(
        tmp_path,
        shop,
        key=KEY,
        secret=SECRET,
        store={"cryptum_api_key": API_KEY, "cryptum_api_url": cryptum.base_url},
        reconcile={"interval_seconds": 3600},
    ).started()
    # The pass a starting bridge makes comes first, so injected failures meet the confirmation.
    await wait_until(
        lambda: sum(r.status == 200 for r in cryptum.api_requests) >= len(RECONCILED_STATUSES)
    )
    order = cryptum.create_order(
        store_id=MAIN_STORE_ID,
        ecommerce_order_id="11",
        total="20.00",
        callback_url=f"{bridge.url}/callbacks/cryptum",
    )
    cryptum.set_status(order.id, "confirmed", transactions=[("POLYGON", "0xfeed")])
    return bridge, order.id


@pytest.mark.slow
async def test_a_payment_is_confirmed_through_broken_api_answers(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    bridge, order_id = await confirming_bridge(tmp_path, shop, cryptum)
    try:
        cryptum.fail_next(status=502, body="html")
        cryptum.fail_next(status=503, body="empty")
        cryptum.fail_next(status=500, body="truncated")
        sent = await cryptum.send_callback(order_id)
        delivery = await bridge.settled(sent.final_answer["event_id"])
        assert delivery["state"] == "done"
        assert shop.orders[11].status == "processing"
        assert len(bridge_notes(shop, 11)) == 1
        faults = [r.status for r in cryptum.api_requests if r.fault == "fail"]
        assert faults == [502, 503, 500]
    finally:
        assert await bridge.stopped() == 0


@pytest.mark.slow
async def test_a_proxys_404_page_does_not_dead_letter_a_payment(
    tmp_path: Path, shop: WooCommerceSimulator, cryptum: CryptumSimulator
) -> None:
    bridge, order_id = await confirming_bridge(tmp_path, shop, cryptum)
    try:
        cryptum.fail_next(status=404, body="html")
        sent = await cryptum.send_callback(order_id)
        delivery = await bridge.settled(sent.final_answer["event_id"])
        assert delivery["state"] == "done", delivery["outcome"]
        assert shop.orders[11].status == "processing"
    finally:
        assert await bridge.stopped() == 0
