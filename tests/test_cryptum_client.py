"""The Cryptum API client against the simulated Cryptum: reads, listings, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bridge.cryptum import CryptumClient
from bridge.simulators.cryptum import CryptumSimulator
from bridge.upstream import FailureKind, UpstreamFailure

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


async def test_lists_recent_orders_by_status(
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
        store_id=STORE, statuses=["confirmed", "failed"], since=since
    )
    assert sorted(order.ecommerce_order_id for order in page.orders) == ["1", "3"]
    assert page.total == 2
    assert all(order.store_id == STORE for order in page.orders)
    later = await client(cryptum, session).list_orders(
        store_id=STORE, statuses=["confirmed"], since=datetime.now(UTC) + timedelta(hours=1)
    )
    assert later.orders == []


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
