"""The WooCommerce client against the simulated shop: auth by scheme, TLS, error reasons."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.config import WooCommerceConfig
from bridge.oauth1 import signature, signature_base_string
from bridge.upstream import FailureKind, UpstreamFailure
from bridge.woocommerce import WooCommerceClient
from bridge_simulators.tls import write_self_signed_certificate
from bridge_simulators.woocommerce import WooCommerceSimulator

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


def test_a_shop_without_ca_file_loads_no_certificates_of_its_own(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # aiohttp's verifying context, loaded once at import, serves every such
    # store (test_basic_auth_over_verified_tls shows that it still verifies);
    # a context of its own would load the trust store again for each store.
    made: list[str] = []

    class Context:
        def __init__(self) -> None:
            made.append("trust store")

        def load_verify_locations(self, *, cafile: str) -> None:
            made.append(cafile)

    monkeypatch.setattr(ssl, "create_default_context", Context)
    client(session, "https://shop.example")
    assert made == []
    certificate, _ = write_self_signed_certificate(tmp_path)
    client(session, "https://shop.example", ca_file=str(certificate))
    assert made == ["trust store", str(certificate)]


@dataclass
class Received:
    method: str
    raw_path: str  # the path exactly as it came on the wire, without the query
    signed_over_raw_path: bool


async def recording_shop(
    aiohttp_server: Any, received: list[Received], *, home_path: str = ""
) -> str:
    """A server that records every request's raw path; returns the home URL to configure.

    It checks the OAuth signature as WooCommerce does, over the home URL
    joined with the raw request path, and answers with an order or a list.
    """

    async def handle(request: web.Request) -> web.Response:
        raw_path = request.raw_path.partition("?")[0]
        parameters = [(k, v) for k, v in request.query.items() if k != "oauth_signature"]
        base = signature_base_string(request.method, home + raw_path[len(home_path) :], parameters)
        valid = signature(base, SECRET) == request.query.get("oauth_signature")
        received.append(Received(request.method, raw_path, valid))
        if raw_path.endswith(("/notes", "/orders")) and request.method == "GET":
            return web.json_response([])
        if raw_path.endswith("/notes"):
            return web.json_response({"id": 1, "note": "n"})
        return web.json_response({"id": 1, "status": "pending"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    home = str(server.make_url(home_path))
    return home


# The order ids an attacker would try, and the one segment each must become.
HOSTILE_IDS = {
    "../customers/1": "..%2Fcustomers%2F1",
    "..": "%2E%2E",
    ".": "%2E",
    "../../../wp-json/wp/v2/users": "..%2F..%2F..%2Fwp-json%2Fwp%2Fv2%2Fusers",
    "1?x=2": "1%3Fx%3D2",
    "1#f": "1%23f",
    "1/notes": "1%2Fnotes",
    "%2E%2E": "%252E%252E",
    "1 2": "1%202",
}

Call = Callable[[WooCommerceClient, str], Awaitable[object]]
CALLS: dict[str, tuple[str, Call, str]] = {
    "get_order": ("GET", lambda woo, order: woo.get_order(order), ""),
    "update_order": ("PUT", lambda woo, order: woo.update_order(order, {"status": "x"}), ""),
    "list_notes": ("GET", lambda woo, order: woo.list_notes(order), "/notes"),
    "add_note": ("POST", lambda woo, order: woo.add_note(order, "text"), "/notes"),
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(("order_id", "segment"), HOSTILE_IDS.items(), ids=list(HOSTILE_IDS))
async def test_an_order_id_reaches_the_shop_as_one_encoded_segment(
    aiohttp_server: Any,
    session: aiohttp.ClientSession,
    call: str,
    order_id: str,
    segment: str,
) -> None:
    received: list[Received] = []
    home = await recording_shop(aiohttp_server, received)
    method, send, suffix = CALLS[call]
    await send(client(session, home), order_id)
    assert received == [Received(method, f"/wp-json/wc/v3/orders/{segment}{suffix}", True)]


async def test_encoded_paths_under_a_home_url_with_a_path_are_signed_as_sent(
    aiohttp_server: Any, session: aiohttp.ClientSession
) -> None:
    received: list[Received] = []
    home = await recording_shop(aiohttp_server, received, home_path="/shop")
    woo = client(session, home)
    await woo.get_order("../customers/1")
    await woo.add_note("7", "text")
    await woo.list_orders(per_page=3)
    assert received == [
        Received("GET", "/shop/wp-json/wc/v3/orders/..%2Fcustomers%2F1", True),
        Received("POST", "/shop/wp-json/wc/v3/orders/7/notes", True),
        Received("GET", "/shop/wp-json/wc/v3/orders", True),
    ]


async def test_an_empty_order_id_is_rejected_without_a_request(
    aiohttp_server: Any, session: aiohttp.ClientSession
) -> None:
    received: list[Received] = []
    home = await recording_shop(aiohttp_server, received)
    failure = await failure_of(client(session, home).get_order(""))
    assert (failure.kind, failure.service) == (FailureKind.REJECTED, "woocommerce")
    assert received == []


async def test_the_simulated_shop_routes_an_encoded_traversal_nowhere(
    session: aiohttp.ClientSession, http_shop: WooCommerceSimulator
) -> None:
    woo = client(session, http_shop.base_url)
    for order_id in ("../11", "..", "11?x=1"):
        failure = await failure_of(woo.get_order(order_id))
        assert (failure.kind, failure.status) == (FailureKind.REJECTED, 404)
