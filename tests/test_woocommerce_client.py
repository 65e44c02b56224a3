"""The WooCommerce client against the simulated shop: auth by scheme, TLS, error reasons."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.config import WooCommerceConfig
from bridge.simulators.tls import write_self_signed_certificate
from bridge.simulators.woocommerce import WooCommerceSimulator
from bridge.upstream import FailureKind, UpstreamFailure
from bridge.woocommerce import WooCommerceClient

KEY, SECRET = "ck_client_test", "cs_client_test"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
async def http_shop() -> AsyncIterator[WooCommerceSimulator]:
    async with WooCommerceSimulator() as shop:
        shop.add_key(KEY, SECRET)
        shop.add_key("ck_read_only", "cs_read_only", permissions="read")
        shop.seed_fixture_shop()
        yield shop


def client(session: aiohttp.ClientSession, url: str, **settings: Any) -> WooCommerceClient:
    config = WooCommerceConfig.model_validate(
        {"url": url, "consumer_key": KEY, "consumer_secret": SECRET} | settings
    )
    return WooCommerceClient(config, session=session, timeout_seconds=2)


async def failure_of(call: Any) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as caught:
        await call
    return caught.value


async def test_oauth_over_http_reads_updates_and_notes(
    session: aiohttp.ClientSession, http_shop: WooCommerceSimulator
) -> None:
    woo = client(session, http_shop.base_url)
    assert woo.auth_method == "oauth1"
    order = await woo.get_order("11")
    assert (order.status, order.total, order.currency) == ("pending", "20.00", "USD")
    assert order.payment_method == "cryptumcheckout_gateway"
    updated = await woo.update_order("11", {"set_paid": True, "transaction_id": "0xfeed"})
    assert (updated.status, updated.transaction_id) == ("processing", "0xfeed")
    note = await woo.add_note("11", "hello")
    assert note.note == "hello"
    assert any(listed.id == note.id for listed in await woo.list_notes("11"))


async def test_missing_order_is_order_not_found_for_get_put_and_notes(
    session: aiohttp.ClientSession, http_shop: WooCommerceSimulator
) -> None:
    woo = client(session, http_shop.base_url)
    for call in (
        woo.get_order("999"),
        woo.update_order("999", {"status": "failed"}),
        woo.add_note("999", "x"),
    ):
        failure = await failure_of(call)
        assert failure.kind is FailureKind.ORDER_NOT_FOUND


async def test_signing_for_another_host_names_the_home_url(
    session: aiohttp.ClientSession, http_shop: WooCommerceSimulator
) -> None:
    wrong_host = http_shop.base_url.replace("127.0.0.1", "localhost")
    failure = await failure_of(client(session, wrong_host).get_order("11"))
    assert failure.kind is FailureKind.CONFIG
    assert "home URL" in failure.reason


async def test_basic_auth_over_http_is_explained(
    session: aiohttp.ClientSession, http_shop: WooCommerceSimulator
) -> None:
    failure = await failure_of(client(session, http_shop.base_url, auth="basic").get_order("11"))
    assert failure.kind is FailureKind.CONFIG
    assert "Basic auth" in failure.reason


async def test_read_only_key_is_explained(
    session: aiohttp.ClientSession, http_shop: WooCommerceSimulator
) -> None:
    woo = client(
        session, http_shop.base_url, consumer_key="ck_read_only", consumer_secret="cs_read_only"
    )
    assert (await woo.get_order("11")).status == "pending"
    failure = await failure_of(woo.update_order("11", {"status": "failed"}))
    assert failure.kind is FailureKind.CONFIG
    assert "read-only" in failure.reason


async def test_errors_and_retry_after_from_the_shop(
    session: aiohttp.ClientSession, http_shop: WooCommerceSimulator
) -> None:
    http_shop.fail_next(1, status=429, retry_after=7)
    failure = await failure_of(client(session, http_shop.base_url).get_order("11"))
    assert (failure.kind, failure.status, failure.retry_after) == (FailureKind.TRANSIENT, 429, 7)


async def test_a_reset_connection_is_transient(
    session: aiohttp.ClientSession, http_shop: WooCommerceSimulator
) -> None:
    http_shop.reset_next(2)  # aiohttp resends a GET once on a dropped connection
    failure = await failure_of(client(session, http_shop.base_url).get_order("11"))
    assert failure.kind is FailureKind.TRANSIENT


async def test_a_timeout_is_transient(
    session: aiohttp.ClientSession, http_shop: WooCommerceSimulator
) -> None:
    http_shop.time_out_next(1, seconds=5)
    config = WooCommerceConfig.model_validate(
        {"url": http_shop.base_url, "consumer_key": KEY, "consumer_secret": SECRET}
    )
    woo = WooCommerceClient(config, session=session, timeout_seconds=0.3)
    failure = await failure_of(woo.get_order("11"))
    assert failure.kind is FailureKind.TRANSIENT
    assert "within 0.3 s" in failure.reason


async def test_basic_auth_over_verified_tls(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    certificate, key = write_self_signed_certificate(tmp_path)
    async with WooCommerceSimulator(https=True, tls_cert=certificate, tls_key=key) as shop:
        shop.add_key(KEY, SECRET)
        shop.seed_fixture_shop()
        trusted = client(session, shop.base_url, ca_file=str(certificate))
        assert trusted.auth_method == "basic"
        assert (await trusted.get_order("12")).id == 12

        untrusted = client(session, shop.base_url)
        failure = await failure_of(untrusted.get_order("12"))
        assert failure.kind is FailureKind.CONFIG
        assert "TLS" in failure.reason
