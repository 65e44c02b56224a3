"""The simulated Cryptum: its orders API over real HTTP, and the callbacks it sends.

A small aiohttp receiver stands in for the bridge: it records every callback's
headers and body and answers the statuses a test queues. Retry delays are a
hundredth of a second, so no test waits for a real backoff.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.signature import InvalidSignature, SignatureForm, verify
from bridge_simulators import CallbackDelivery, CryptumSimulator, SimCryptumOrder
from bridge_simulators.cryptum_signing import reference_canonical

STORE = "3ac0d5b2-1f7e-4a8e-9d0c-7d2e41ad4e9e"
OTHER_STORE = "9b1e2f70-5c1d-4c0b-8f3e-2a6d9e4b7c11"
KEY = "cryptum-api-key-main"
OTHER_KEY = "cryptum-api-key-other"
SECRET = "whsec_sim_main_5a1b"
OTHER_SECRET = "whsec_sim_other_9c2d"
START = datetime(2026, 1, 10, 12, 0, tzinfo=UTC).timestamp()
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
CALLBACK_FIELDS = [
    "message",
    "status",
    "orderId",
    "ecommerceOrderId",
    "storeId",
    "transactions",
    "updatedProducts",
]
TX = ("CELO", "0x7a9c9f00aa1139517d3d")


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Stands in for the bridge: records callbacks, answers queued statuses (then 200)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: deque[int] = field(default_factory=deque)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        status = self.answers.popleft() if self.answers else 200
        return web.json_response({"answered": status}, status=status)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def cryptum(clock: FakeClock) -> AsyncIterator[CryptumSimulator]:
    simulator = CryptumSimulator(clock=clock, callback_retry_delays=(0.01, 0.01))
    simulator.add_store(STORE, api_key=KEY, webhook_secret=SECRET, name="Main shop")
    simulator.add_store(OTHER_STORE, api_key=OTHER_KEY, webhook_secret=OTHER_SECRET)
    async with simulator:
        yield simulator


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/callbacks/cryptum/main", receiver.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    receiver.url = str(server.make_url("/callbacks/cryptum/main"))
    return receiver


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def base(cryptum: CryptumSimulator) -> str:
    assert cryptum.base_url is not None
    return cryptum.base_url


async def api_get(
    session: aiohttp.ClientSession,
    cryptum: CryptumSimulator,
    path: str,
    *,
    key: str | None = KEY,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {"x-api-key": key} if key is not None else {}
    async with session.get(base(cryptum) + path, headers=headers, params=params) as response:
        return response.status, await response.json()


async def api_post(
    session: aiohttp.ClientSession,
    cryptum: CryptumSimulator,
    path: str,
    body: Any,
    *,
    key: str = KEY,
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"x-api-key": key, "Content-Type": "application/json"}
    async with session.post(base(cryptum) + path, data=data, headers=headers) as response:
        return response.status, await response.json()


def new_order(
    cryptum: CryptumSimulator,
    ecommerce_order_id: str = "2",
    *,
    store_id: str = STORE,
    status: str = "pending",
    callback_url: str = "http://127.0.0.1:9/callback",
) -> SimCryptumOrder:
    return cryptum.create_order(
        store_id=store_id,
        ecommerce_order_id=ecommerce_order_id,
        total="25.40",
        callback_url=callback_url,
        status=status,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# Authentication ----------------------------------------------------------------------


async def test_the_api_needs_a_stores_api_key(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    order = new_order(cryptum)
    path = f"/orders/{order.id}"
    assert await api_get(session, cryptum, path, key=None) == (
        401,
        {"error": {"message": "Unauthorized"}},
    )
    assert await api_get(session, cryptum, path, key="not-a-key") == (
        401,
        {"error": {"message": "Invalid API key"}},
    )
    status, body = await api_get(session, cryptum, path)
    assert (status, body["id"]) == (200, order.id)
    # Undocumented in the real API; the simulator lets any valid key read any order.
    status, _ = await api_get(session, cryptum, path, key=OTHER_KEY)
    assert status == 200


# Reading one order -------------------------------------------------------------------


async def test_an_order_reads_back_with_the_documented_fields(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    order = cryptum.create_order(
        store_id=STORE,
        ecommerce_order_id="103",
        total="25.40",
        currency="BRL",
        callback_url="http://shop.example/?wc-api=cryptumcheckout_payment_gateway",
    )
    clock.now += 90.5
    cryptum.set_status(order.id, "confirmed", transactions=[TX])
    status, body = await api_get(session, cryptum, f"/orders/{order.id}")
    assert status == 200
    assert body["id"] == order.id
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", order.id)
    assert {key: body[key] for key in ("ecommerceOrderId", "ecommerceType", "paymentStatus")} == {
        "ecommerceOrderId": "103",
        "ecommerceType": "wordpress",
        "paymentStatus": "confirmed",
    }
    assert (body["orderTotal"], body["orderCurrency"]) == ("25.40", "BRL")
    assert body["store"] == {"id": STORE, "name": "Main shop"}
    assert body["callbackUrl"] == order.callback_url
    assert set(body["deliveryInfo"]) >= {"firstName", "lastName", "email", "country", "address"}
    assert body["marketRates"]["BRL"] == "1" and float(body["marketRates"]["USD"]) > 0
    assert isinstance(body["sessionToken"], str) and len(body["sessionToken"]) > 20
    assert body["transactions"] == [{"protocol": "CELO", "hash": TX[1]}]
    assert (body["createdAt"], body["updatedAt"]) == (
        "2026-01-10T12:00:00.000Z",
        "2026-01-10T12:01:30.500Z",
    )


async def test_an_unknown_order_is_not_found(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    assert await api_get(session, cryptum, "/orders/0da30000-0000-4000-8000-000000f53b37") == (
        404,
        {"error": {"message": "Order not found"}},
    )


async def test_unknown_routes_answer_in_the_error_shape(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    status, body = await api_get(session, cryptum, "/stores")
    assert (status, set(body)) == (404, {"error"})
    async with session.get(base(cryptum).removesuffix("/plugins") + "/elsewhere") as response:
        assert (response.status, set(await response.json())) == (404, {"error"})


# Listing orders ----------------------------------------------------------------------


async def list_ids(
    session: aiohttp.ClientSession, cryptum: CryptumSimulator, **params: str
) -> list[str]:
    status, body = await api_get(session, cryptum, "/orders/", params={"storeId": STORE, **params})
    assert status == 200, body
    return [order["ecommerceOrderId"] for order in body["orders"]]


@pytest.fixture
def listed(cryptum: CryptumSimulator, clock: FakeClock) -> dict[str, SimCryptumOrder]:
    """Five orders of the main store, one a day from 10 January, and one of the other store."""
    orders = {}
    for number, status in enumerate(["pending", "on-hold", "confirmed", "failed", "cancelled"]):
        orders[str(number)] = new_order(cryptum, str(number), status=status)
        clock.now += 86_400
    new_order(cryptum, "other", store_id=OTHER_STORE)
    return orders


async def test_list_filters_by_store_and_lists_newest_update_first(
    cryptum: CryptumSimulator,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    listed: dict[str, SimCryptumOrder],
) -> None:
    assert await list_ids(session, cryptum) == ["4", "3", "2", "1", "0"]
    cryptum.set_status(listed["1"].id, "confirmed")
    assert await list_ids(session, cryptum) == ["1", "4", "3", "2", "0"]
    status, body = await api_get(
        session, cryptum, "/orders", key=OTHER_KEY, params={"storeId": OTHER_STORE}
    )
    assert (status, [order["ecommerceOrderId"] for order in body["orders"]]) == (200, ["other"])
    # As documented for lists: the store as its id, not as an object, and no
    # paymentStatus or transactions (the documented entry shows neither).
    assert body["orders"][0]["store"] == OTHER_STORE
    assert "paymentStatus" not in body["orders"][0]
    assert "transactions" not in body["orders"][0]


async def test_a_key_lists_only_its_own_stores_orders(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession, listed: dict[str, SimCryptumOrder]
) -> None:
    status, body = await api_get(session, cryptum, "/orders/", params={"storeId": OTHER_STORE})
    assert (status, body) == (403, {"error": {"message": "Forbidden"}})


async def test_list_filters_by_one_payment_status(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession, listed: dict[str, SimCryptumOrder]
) -> None:
    for number, status in enumerate(["pending", "on-hold", "confirmed", "failed", "cancelled"]):
        assert await list_ids(session, cryptum, paymentStatus=status) == [str(number)]


async def test_list_filters_on_updated_at_inclusively(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession, listed: dict[str, SimCryptumOrder]
) -> None:
    # Orders 0..4 were updated at noon UTC on 10..14 January 2026.
    assert await list_ids(session, cryptum, startDate="2026-01-12") == ["4", "3", "2"]
    assert await list_ids(session, cryptum, endDate="2026-01-11") == ["1", "0"]
    assert await list_ids(
        session, cryptum, startDate="2026-01-11T12:00:00Z", endDate="2026-01-13T12:00:00.000Z"
    ) == ["3", "2", "1"]
    assert await list_ids(
        session, cryptum, startDate="2026-01-11T12:00:00.001Z", endDate="2026-01-13T11:59:59Z"
    ) == ["2"]
    assert await list_ids(session, cryptum, startDate="2026-01-12T09:00:01-03:00") == ["4", "3"]
    assert await list_ids(session, cryptum, endDate="2026-01-11T13:00:00+01:00") == ["1", "0"]
    # An updatedAt read back from the API finds its own order.
    _, body = await api_get(session, cryptum, f"/orders/{listed['2'].id}")
    stamp = body["updatedAt"]
    assert await list_ids(session, cryptum, startDate=stamp, endDate=stamp) == ["2"]


async def test_list_pages_with_limit_offset_and_count(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession, listed: dict[str, SimCryptumOrder]
) -> None:
    params = {"storeId": STORE, "limit": "2", "offset": "1", "withCount": "true"}
    status, body = await api_get(session, cryptum, "/orders/", params=params)
    assert status == 200
    assert body["total"] == 5
    assert [order["ecommerceOrderId"] for order in body["orders"]] == ["3", "2"]
    assert await list_ids(session, cryptum, offset="4") == ["0"]
    assert await list_ids(session, cryptum, offset="9") == []
    status, body = await api_get(session, cryptum, "/orders/", params={"storeId": STORE})
    assert "total" not in body and len(body["orders"]) == 5
    params = {"storeId": STORE, "paymentStatus": "pending", "withCount": "true", "limit": "1"}
    assert (await api_get(session, cryptum, "/orders/", params=params))[1]["total"] == 1


async def test_list_returns_at_most_one_hundred_orders(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    for number in range(105):
        new_order(cryptum, str(number))
    params = {"storeId": STORE, "withCount": "true"}
    _, body = await api_get(session, cryptum, "/orders/", params=params)
    assert (body["total"], len(body["orders"])) == (105, 100)
    # Created in the same millisecond: still newest first.
    assert body["orders"][0]["ecommerceOrderId"] == "104"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({}, "storeId"),
        ({"paymentStatus": "paid"}, "paymentStatus"),
        ({"paymentStatus": "confirmed,"}, "paymentStatus"),
        # Documented as ONE enum value: a list of them is refused.
        ({"paymentStatus": "confirmed,cancelled,failed"}, "paymentStatus"),
        ({"paymentStatus": "pending,on-hold"}, "paymentStatus"),
        ({"paymentStatus": " confirmed"}, "paymentStatus"),
        # Not among the documented parameters.
        ({"status": "confirmed"}, "status"),
        ({"page": "2"}, "page"),
        ({"startDate": "yesterday"}, "startDate"),
        ({"endDate": "2026-13-01"}, "endDate"),
        ({"startDate": "2026-01-12", "endDate": "2026-01-11"}, "startDate"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"withCount": "maybe"}, "withCount"),
    ],
)
async def test_invalid_list_parameters_are_a_400_naming_the_parameter(
    cryptum: CryptumSimulator,
    session: aiohttp.ClientSession,
    params: dict[str, str],
    names: str,
) -> None:
    query = params if not params else {"storeId": STORE, **params}
    status, body = await api_get(session, cryptum, "/orders/", params=query)
    assert status == 400
    assert names in body["error"]["message"]


# Creating orders ---------------------------------------------------------------------


def checkout_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ecommerceOrderId": "57",
        "ecommerceType": "wordpress",
        "orderTotal": "12.50",
        "orderCurrency": "USD",
        "callbackUrl": "http://shop.example/wc-api/cryptumcheckout_payment_gateway/",
        "store": STORE,
        "deliveryInfo": {
            "firstName": "Ana",
            "lastName": "Lima",
            "email": "ana@example.com",
            "country": "BR",
        },
        "cancelReturnUrl": "http://shop.example/cart/",
        "successReturnUrl": "http://shop.example/checkout/order-received/57/",
    }
    fields.update(overrides)
    return {name: value for name, value in fields.items() if value is not None}


async def test_checkout_creates_an_order(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    status, body = await api_post(session, cryptum, "/orders/checkout", checkout_fields())
    assert status == 201
    order = cryptum.orders[body["id"]]
    assert (order.ecommerce_order_id, order.total, order.status) == ("57", "12.50", "pending")
    assert body["store"] == {"id": STORE, "name": "Main shop"}
    assert body["successReturnUrl"] == "http://shop.example/checkout/order-received/57/"
    assert body["deliveryInfo"]["email"] == "ana@example.com"
    assert (await api_get(session, cryptum, f"/orders/{order.id}"))[1] == body
    fields = checkout_fields(paymentStatus="on-hold", ecommerceType="api")
    status, body = await api_post(session, cryptum, "/orders/checkout", fields)
    assert (status, body["paymentStatus"], body["ecommerceType"]) == (201, "on-hold", "api")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (checkout_fields(orderTotal=None, callbackUrl=None), "orderTotal, callbackUrl"),
        (checkout_fields(deliveryInfo={"firstName": "Ana"}), "deliveryInfo.lastName"),
        (checkout_fields(deliveryInfo="Ana Lima"), "deliveryInfo"),
        (checkout_fields(ecommerceOrderId=57), "ecommerceOrderId"),
        (checkout_fields(ecommerceType="shopify"), "ecommerceType"),
        (checkout_fields(orderTotal="-1"), "orderTotal"),
        (checkout_fields(orderTotal="abc"), "orderTotal"),
        (checkout_fields(callbackUrl="ftp://shop.example/"), "callbackUrl"),
        (checkout_fields(paymentStatus="confirmed"), "paymentStatus"),
        (checkout_fields(store="no-such-store"), "Store not found"),
        (b"{not json", "JSON"),
        ([1, 2], "object"),
    ],
)
async def test_bad_checkouts_are_a_400(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession, body: Any, message: str
) -> None:
    status, answer = await api_post(session, cryptum, "/orders/checkout", body)
    assert status == 400
    assert message in answer["error"]["message"]
    assert cryptum.orders == {}


def test_the_python_side_refuses_unknown_stores_and_statuses() -> None:
    cryptum = CryptumSimulator()
    cryptum.add_store(STORE, api_key=KEY, webhook_secret=SECRET)
    with pytest.raises(ValueError, match="unknown store"):
        new_order(cryptum, store_id=OTHER_STORE)
    with pytest.raises(ValueError, match="unknown status"):
        new_order(cryptum, status="paid")
    order = new_order(cryptum)
    with pytest.raises(ValueError, match="unknown status"):
        cryptum.set_status(order.id, "refunded")
    assert order.status == "pending"
    with pytest.raises(KeyError):
        cryptum.set_status("no-such-order", "confirmed")


# Callbacks ---------------------------------------------------------------------------


async def test_a_callback_carries_the_observed_fields_compact_and_signed(
    cryptum: CryptumSimulator, receiver: Receiver
) -> None:
    order = new_order(cryptum, "2", callback_url=receiver.url)
    delivery = await cryptum.change_status(order.id, "confirmed", transactions=[TX])
    assert [received.body for received in receiver.received] == [delivery.body]
    headers = receiver.received[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Webhook-Signature"] == delivery.signature
    payload = json.loads(delivery.body)
    assert list(payload) == CALLBACK_FIELDS
    assert payload == {
        "message": "Payment was successful",
        "status": "confirmed",
        "orderId": order.id,
        "ecommerceOrderId": "2",
        "storeId": STORE,
        "transactions": [{"protocol": "CELO", "hash": TX[1]}],
        "updatedProducts": None,
    }
    assert delivery.body == json.dumps(payload, separators=(",", ":")).encode()
    assert verify(delivery.body, delivery.signature, SECRET) == "json"
    assert (delivery.attempts, delivery.delivered, delivery.lost) == ([200], True, False)
    assert delivery.final_answer == {"answered": 200}
    assert cryptum.orders[order.id].status == "confirmed"


async def test_pretty_and_compact_bodies_carry_the_same_signature(
    cryptum: CryptumSimulator, receiver: Receiver
) -> None:
    order = new_order(cryptum, callback_url=receiver.url)
    cryptum.set_status(order.id, "on-hold", transactions=[TX, ("ETHEREUM", "0xfeed")])
    compact = await cryptum.send_callback(order.id)
    pretty = await cryptum.send_callback(order.id, pretty=True)
    assert b"\n" not in compact.body and b' "' not in compact.body
    assert pretty.body.startswith(b'{\n  "message": ') and b'"status": "on-hold"' in pretty.body
    assert json.loads(pretty.body) == json.loads(compact.body)
    assert pretty.signature == compact.signature
    for delivery in (compact, pretty):
        verify(delivery.body, delivery.signature, SECRET)
    assert [received.body for received in receiver.received] == [compact.body, pretty.body]


async def test_a_quote_in_a_message_is_signed_by_the_reference_rule_not_json(
    cryptum: CryptumSimulator, receiver: Receiver
) -> None:
    # The reference rule misreads the escaped quote, so the two canonical forms
    # differ: Cryptum signs the reference one, which the bridge accepts too.
    order = new_order(cryptum, callback_url=receiver.url)
    cryptum.set_status(order.id, "failed", message='Refused: "insufficient funds" on chain')
    delivery = await cryptum.send_callback(order.id, pretty=True)
    json_form = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert reference_canonical(delivery.body) != json_form
    assert verify(delivery.body, delivery.signature, SECRET) is SignatureForm.REFERENCE
    assert receiver.received[0].headers["X-Webhook-Signature"] == delivery.signature


async def test_forged_and_other_secret_signatures_fail_verification(
    cryptum: CryptumSimulator, receiver: Receiver
) -> None:
    order = new_order(cryptum, callback_url=receiver.url)
    cryptum.set_status(order.id, "confirmed")
    forged = await cryptum.send_callback(order.id, signature="Zm9yZ2Vk")
    other = await cryptum.send_callback(order.id, secret=OTHER_SECRET)
    unsigned = await cryptum.send_callback(order.id, unsigned=True)
    assert receiver.received[0].headers["X-Webhook-Signature"] == "Zm9yZ2Vk"
    for delivery, reason in ((forged, "wrong_length"), (other, "mismatch")):
        with pytest.raises(InvalidSignature) as error:
            verify(delivery.body, delivery.signature, SECRET)
        assert error.value.reason == reason
    verify(other.body, other.signature, OTHER_SECRET)
    assert unsigned.signature is None
    assert "X-Webhook-Signature" not in receiver.received[2].headers


async def test_a_status_override_changes_the_body_only(
    cryptum: CryptumSimulator, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    order = new_order(cryptum, callback_url=receiver.url)
    cryptum.set_status(order.id, "failed")
    delivery = await cryptum.send_callback(order.id, status="refunded")
    assert delivery.payload["status"] == "refunded"
    verify(delivery.body, delivery.signature, SECRET)
    assert (await api_get(session, cryptum, f"/orders/{order.id}"))[1]["paymentStatus"] == "failed"


async def test_set_status_sends_nothing_and_keeps_transactions_unless_given(
    cryptum: CryptumSimulator, receiver: Receiver, clock: FakeClock
) -> None:
    order = new_order(cryptum, callback_url=receiver.url)
    cryptum.set_status(order.id, "on-hold", transactions=[TX], message="Seen on chain")
    clock.now += 5
    cryptum.set_status(order.id, "confirmed")
    assert (receiver.received, cryptum.callbacks) == ([], [])
    assert order.transactions == [TX]
    assert order.updated_at == START + 5 and order.created_at == START
    delivery = await cryptum.send_callback(order.id)
    assert delivery.payload["message"] == "Payment was successful"
    cryptum.set_status(order.id, "confirmed", transactions=[], message="Paid twice")
    delivery = await cryptum.send_callback(order.id)
    assert (delivery.payload["message"], delivery.payload["transactions"]) == ("Paid twice", [])


async def test_a_refused_callback_is_retried_until_a_2xx(
    cryptum: CryptumSimulator, receiver: Receiver
) -> None:
    receiver.answers.extend([500])
    order = new_order(cryptum, callback_url=receiver.url)
    delivery = await cryptum.change_status(order.id, "confirmed")
    assert (delivery.attempts, delivery.delivered) == ([500, 200], True)
    assert [received.body for received in receiver.received] == [delivery.body] * 2
    assert delivery.final_answer == {"answered": 200}


async def test_the_sender_gives_up_after_its_retry_schedule(
    cryptum: CryptumSimulator, receiver: Receiver
) -> None:
    receiver.answers.extend([503, 400, 500, 200])
    order = new_order(cryptum, callback_url=receiver.url)
    started = time.monotonic()
    delivery = await cryptum.change_status(order.id, "cancelled")
    assert (delivery.attempts, delivery.delivered) == ([503, 400, 500], False)
    assert delivery.final_answer == {"answered": 500}
    assert len(receiver.received) == 3
    assert time.monotonic() - started < 2


async def test_an_unreachable_receiver_counts_as_attempts_without_a_status(
    cryptum: CryptumSimulator,
) -> None:
    order = new_order(cryptum, callback_url=f"http://127.0.0.1:{closed_port()}/callback")
    delivery = await cryptum.change_status(order.id, "confirmed")
    assert (delivery.attempts, delivery.delivered, delivery.final_answer) == (
        [None, None, None],
        False,
        None,
    )


async def test_a_receiver_slower_than_the_timeout_is_an_attempt_without_a_status(
    aiohttp_server: Any, clock: FakeClock
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(1.0)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/slow", slow)
    server = await aiohttp_server(app, host="127.0.0.1")
    async with CryptumSimulator(clock=clock, callback_retry_delays=()) as cryptum:
        cryptum.add_store(STORE, api_key=KEY, webhook_secret=SECRET)
        cryptum.callback_timeout = 0.05
        order = new_order(cryptum, callback_url=str(server.make_url("/slow")))
        delivery = await cryptum.send_callback(order.id)
    assert (delivery.attempts, delivery.delivered) == ([None], False)


async def test_close_stops_a_retry_schedule_without_waiting_it_out(
    receiver: Receiver, clock: FakeClock
) -> None:
    receiver.answers.extend([500])
    cryptum = CryptumSimulator(clock=clock, callback_retry_delays=(30.0,))
    cryptum.add_store(STORE, api_key=KEY, webhook_secret=SECRET)
    order = new_order(cryptum, callback_url=receiver.url)
    sending = asyncio.create_task(cryptum.send_callback(order.id))
    while not (cryptum.callbacks and cryptum.callbacks[0].attempts):
        await asyncio.sleep(0.005)
    started = time.monotonic()
    await cryptum.close()
    delivery = await asyncio.wait_for(sending, 2)
    assert (delivery.attempts, delivery.delivered) == ([500], False)
    assert time.monotonic() - started < 1


async def test_a_lost_callback_is_recorded_but_never_sent(
    cryptum: CryptumSimulator, receiver: Receiver
) -> None:
    order = new_order(cryptum, callback_url=receiver.url)
    lost = await cryptum.change_status(order.id, "confirmed", transactions=[TX], lose=True)
    sent = await cryptum.send_callback(order.id)
    assert receiver.received[0].body == sent.body
    assert len(receiver.received) == 1
    assert (lost.lost, lost.attempts, lost.delivered) == (True, [], False)
    assert cryptum.callbacks == [lost, sent]
    assert isinstance(lost, CallbackDelivery) and lost.body == sent.body
    assert cryptum.orders[order.id].status == "confirmed"


# Fault knobs -------------------------------------------------------------------------


async def test_fail_next_answers_errors_then_recovers(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    order = new_order(cryptum)
    path = f"/orders/{order.id}"
    cryptum.fail_next(2)
    cryptum.fail_next(status=429)
    cryptum.fail_next(status=500)
    answers = [await api_get(session, cryptum, path) for _ in range(5)]
    assert [status for status, _ in answers] == [503, 503, 429, 500, 200]
    assert answers[0][1] == {"message": "Service Unavailable"}
    assert answers[2][1] == {"message": "Too Many Requests"}
    assert answers[3][1] == {"message": "Internal server error"}
    assert [(r.status, r.fault) for r in cryptum.api_requests] == [
        (503, "fail"),
        (503, "fail"),
        (429, "fail"),
        (500, "fail"),
        (200, None),
    ]


NGINX_502_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


async def raw_get(
    session: aiohttp.ClientSession, cryptum: CryptumSimulator, path: str
) -> tuple[int, str | None, bytes]:
    """Status, Content-Type and the body's bytes, whatever they hold."""
    async with session.get(base(cryptum) + path, headers={"x-api-key": KEY}) as response:
        return response.status, response.headers.get("Content-Type"), await response.read()


async def test_fail_next_html_is_a_proxys_error_page(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    order = new_order(cryptum)
    cryptum.fail_next(status=502, body="html")
    cryptum.fail_next(status=503, body="html")
    assert await raw_get(session, cryptum, f"/orders/{order.id}") == (
        502,
        "text/html",
        NGINX_502_PAGE,
    )
    status, _, page = await raw_get(session, cryptum, f"/orders/{order.id}")
    assert (status, b"<title>503 Service Temporarily Unavailable</title>" in page) == (503, True)
    assert (await raw_get(session, cryptum, f"/orders/{order.id}"))[0] == 200
    assert [(r.status, r.fault) for r in cryptum.api_requests] == [
        (502, "fail"),
        (503, "fail"),
        (200, None),
    ]


async def test_fail_next_empty_sends_no_body_and_no_content_type(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    cryptum.fail_next(status=503, body="empty")
    assert await raw_get(session, cryptum, "/orders/any") == (503, None, b"")


async def test_fail_next_truncated_is_the_json_error_cut_halfway(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    cryptum.fail_next(status=500, body="truncated")
    cryptum.fail_next(status=500)
    status, content_type, cut = await raw_get(session, cryptum, "/orders/any")
    whole = (await raw_get(session, cryptum, "/orders/any"))[2]
    assert (status, content_type) == (500, "application/json; charset=utf-8")
    assert json.loads(whole) == {"message": "Internal server error"}
    assert whole.startswith(cut) and len(cut) == len(whole) // 2
    with pytest.raises(ValueError):
        json.loads(cut)


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, "json"), (302, "html"), (399, "empty"), (600, "truncated"), (503, "xml"), (599, "html")],
)
def test_fail_next_refuses_what_it_cannot_send(status: int, body: Any) -> None:
    with pytest.raises(ValueError):
        CryptumSimulator().fail_next(status=status, body=body)


async def test_a_down_api_resets_every_connection_until_it_is_back(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    order = new_order(cryptum)
    cryptum.down = True
    with pytest.raises(aiohttp.ClientConnectionError):
        await api_get(session, cryptum, f"/orders/{order.id}")
    assert cryptum.api_requests
    assert {(r.status, r.fault) for r in cryptum.api_requests} == {(None, "down")}
    cryptum.down = False
    assert (await api_get(session, cryptum, f"/orders/{order.id}"))[0] == 200


async def test_latency_delays_every_api_request(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    cryptum.latency = 0.15
    started = time.monotonic()
    assert (await api_get(session, cryptum, "/orders/unknown"))[0] == 404
    assert time.monotonic() - started >= 0.15


async def test_api_requests_are_recorded_with_their_query(
    cryptum: CryptumSimulator, session: aiohttp.ClientSession
) -> None:
    await api_get(session, cryptum, "/orders/", params={"storeId": STORE, "limit": "5"})
    await api_get(session, cryptum, "/orders/x", key=None)
    recorded = [(r.method, r.path, r.query, r.status) for r in cryptum.api_requests]
    assert recorded == [
        ("GET", "/plugins/orders/", {"storeId": STORE, "limit": "5"}, 200),
        ("GET", "/plugins/orders/x", {}, 401),
    ]


async def test_start_returns_the_base_url_and_close_stops_serving(
    session: aiohttp.ClientSession,
) -> None:
    cryptum = CryptumSimulator()
    cryptum.add_store(STORE, api_key=KEY, webhook_secret=SECRET)
    url = await cryptum.start()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/plugins", url) and cryptum.base_url == url
    with pytest.raises(RuntimeError):
        await cryptum.start()
    await cryptum.close()
    assert cryptum.base_url is None
    with pytest.raises(aiohttp.ClientConnectionError):
        await session.get(url + "/orders/x", headers={"x-api-key": KEY})


async def test_the_bare_app_serves_the_api(aiohttp_client: Any) -> None:
    cryptum = CryptumSimulator()
    cryptum.add_store(STORE, api_key=KEY, webhook_secret=SECRET)
    order = new_order(cryptum)
    client = await aiohttp_client(cryptum.app())
    response = await client.get(f"/plugins/orders/{order.id}", headers={"x-api-key": KEY})
    assert (response.status, (await response.json())["id"]) == (200, order.id)
    assert ISO_UTC.fullmatch((await response.json())["createdAt"])
