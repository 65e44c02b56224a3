"""A simulated Cryptum Checkout: its orders API over real HTTP, and its callback sender.

Tests, the demo and benchmarks create orders here, move their payment status
and have the simulator POST signed callbacks to the bridge, while the bridge
reads the orders back through the API as it would from `api.cryptum.io`.
Orders, stores and their JSON live in `cryptum_orders`, the API's routes and
validation in `cryptum_api`, callback bodies and retries in
`cryptum_callbacks`; this module is the HTTP edge plus the knobs tests turn:
injected failures, an API that is down, latency and the log of requests.

Facts come from Cryptum's documentation and its WooCommerce plugin (see
`spec/cryptum.md`). Where those say nothing the simulator picks plausible
behaviour and says so: any valid API key may read any store's orders (the
real API's cross-store behaviour is not documented), list limits and error
messages, the messages of callbacks other than "Payment was successful", the
callback retry schedule, and the failed answers of `fail_next` other than the
documented `{"message": ...}` (a proxy's HTML page, an empty body, JSON cut
short), which are what anything in front of an API may send.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, get_args

from aiohttp import web

from bridge_simulators.cryptum_api import ApiRequest, ApiResponse, CryptumApi
from bridge_simulators.cryptum_callbacks import CallbackDelivery, CallbackSender, callback_body
from bridge_simulators.cryptum_orders import CryptumBackend, SimCryptumOrder, SimCryptumStore
from bridge_simulators.cryptum_signing import sign
from bridge_simulators.fault_bodies import PROXY_PAGE_CONTENT_TYPE, cut_short, proxy_error_page

__all__ = ["BASE_PATH", "CryptumSimulator", "FailureBody", "RecordedApiRequest"]

BASE_PATH = "/plugins"

# The shape of an injected failure's body: "json" the documented `{"message": ...}`,
# "html" a reverse proxy's error page, "empty" nothing, "truncated" that JSON cut halfway.
FailureBody = Literal["json", "html", "empty", "truncated"]
_JSON_CONTENT_TYPE = "application/json; charset=utf-8"  # as the API's own answers

# The messages of "json" failures: gateways in front of the API answer `{"message": ...}`.
_FAILURE_MESSAGES = {
    429: "Too Many Requests",
    500: "Internal server error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class RecordedApiRequest:
    method: str
    path: str
    query: dict[str, str]
    status: int | None  # None: no answer (the API was down)
    fault: Literal["fail", "down"] | None = None


class CryptumSimulator:
    """One simulated Cryptum; `start()` serves its API on a port, `app()` gives the bare app."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        callback_retry_delays: Sequence[float] = (0.2, 1.0, 5.0),
    ) -> None:
        self.clock = clock
        self.down = False  # while True every API request gets a connection reset
        self.latency = 0.0  # seconds added to every API request
        self.callbacks: list[CallbackDelivery] = []  # every callback sent or lost, in order
        self.api_requests: list[RecordedApiRequest] = []
        self._backend = CryptumBackend(clock)
        self.orders: dict[str, SimCryptumOrder] = self._backend.orders
        self.stores: dict[str, SimCryptumStore] = self._backend.stores
        self._api = CryptumApi(self._backend)
        self._failures: deque[tuple[int, FailureBody]] = deque()
        self._sender = CallbackSender(retry_delays=callback_retry_delays, timeout=10.0)
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None

    # Stores and orders -------------------------------------------------------------

    def add_store(
        self, store_id: str, *, api_key: str, webhook_secret: str, name: str = "Test store"
    ) -> None:
        self._backend.add_store(store_id, api_key=api_key, webhook_secret=webhook_secret, name=name)

    def create_order(
        self,
        *,
        store_id: str,
        ecommerce_order_id: str,
        total: str,
        currency: str = "USD",
        callback_url: str,
        customer: Mapping[str, str] | None = None,
        status: str = "pending",
    ) -> SimCryptumOrder:
        """A new order as the shop's checkout creates it; `customer` is its `deliveryInfo`."""
        return self._backend.create_order(
            store_id=store_id,
            ecommerce_order_id=ecommerce_order_id,
            total=total,
            currency=currency,
            callback_url=callback_url,
            customer=customer,
            status=status,
        )

    def set_status(
        self,
        order_id: str,
        status: str,
        *,
        transactions: Sequence[tuple[str, str]] | None = None,
        message: str | None = None,
    ) -> None:
        """Change what the API says about the order, without sending a callback.

        `transactions=None` keeps the order's transactions; `message=None` gives
        the callback the status's usual message.
        """
        self._backend.set_status(order_id, status, transactions=transactions, message=message)

    # Callbacks -----------------------------------------------------------------------

    async def send_callback(
        self,
        order_id: str,
        *,
        pretty: bool = False,
        lose: bool = False,
        signature: str | None = None,
        secret: str | None = None,
        status: str | None = None,
        unsigned: bool = False,
    ) -> CallbackDelivery:
        """POST the order's current state to its `callbackUrl`, retrying on the schedule.

        `signature` replaces the computed header (a forgery), `secret` signs with
        another secret, `unsigned` sends no header at all, `status` changes the
        body's status only (a callback that disagrees with the API), and `lose`
        records the callback without sending it.
        """
        order = self._backend.order(order_id)
        body = callback_body(order, status=status, pretty=pretty)
        if unsigned:
            header = None
        elif signature is not None:
            header = signature
        else:
            header = sign(body, secret if secret is not None else self._secret(order))
        delivery = CallbackDelivery(order_id, body, header, lost=lose, url=order.callback_url)
        self.callbacks.append(delivery)
        if not lose:
            await self._sender.deliver(delivery)
        return delivery

    async def change_status(
        self,
        order_id: str,
        status: str,
        *,
        transactions: Sequence[tuple[str, str]] | None = None,
        message: str | None = None,
        pretty: bool = False,
        lose: bool = False,
    ) -> CallbackDelivery:
        """Move the payment and send its callback, as Cryptum does."""
        self.set_status(order_id, status, transactions=transactions, message=message)
        return await self.send_callback(order_id, pretty=pretty, lose=lose)

    @property
    def callback_timeout(self) -> float:
        """Seconds a callback attempt may take before it counts as unanswered."""
        return self._sender.timeout

    @callback_timeout.setter
    def callback_timeout(self, seconds: float) -> None:
        self._sender.timeout = seconds

    def _secret(self, order: SimCryptumOrder) -> str:
        return self.stores[order.store_id].webhook_secret

    # Fault knobs -----------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 503, body: FailureBody = "json") -> None:
        """Answer the next `count` API requests with `status` and a failure's `body`.

        `body` is "json" (`{"message": ...}`), "html" (a proxy's error page),
        "empty", or "truncated" (that JSON cut halfway).
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        if not 400 <= status <= 599:
            raise ValueError("a failure needs an HTTP status of 400 to 599")
        if body not in get_args(FailureBody):
            raise ValueError(f"unknown failure body {body!r}")
        if body == "html":
            proxy_error_page(status)  # raises for a status the proxy has no page for
        self._failures.extend([(status, body)] * count)

    # Serving ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the API on `host:port` (0: any free port); returns its base URL."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        netloc = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{netloc}:{bound_port}{BASE_PATH}"
        return self.base_url

    async def close(self) -> None:
        """Stop serving and stop retrying callbacks."""
        await self._sender.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.base_url = None

    async def __aenter__(self) -> CryptumSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # Requests --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query.items())
        if self.down:
            self._record(request, query, None, "down")
            return _reset(request)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self._failures:
            status, body = self._failures.popleft()
            self._record(request, query, status, "fail")
            return _failure_response(status, body)
        answer = await self._answer(request, query)
        self._record(request, query, answer.status)
        return web.json_response(answer.body, status=answer.status)

    async def _answer(self, request: web.Request, query: dict[str, str]) -> ApiResponse:
        path = request.path
        if path != BASE_PATH and not path.startswith(BASE_PATH + "/"):
            return ApiResponse(404, {"error": {"message": f"Cannot {request.method} {path}"}})
        api_request = ApiRequest(
            method=request.method,
            route=path[len(BASE_PATH) :] or "/",
            query=query,
            api_key=request.headers.get("x-api-key"),
            body=await request.read(),
        )
        return self._api.dispatch(api_request)

    def _record(
        self,
        request: web.Request,
        query: dict[str, str],
        status: int | None,
        fault: Literal["fail", "down"] | None = None,
    ) -> None:
        self.api_requests.append(
            RecordedApiRequest(request.method, request.path, query, status, fault)
        )


def _failure_response(status: int, body: FailureBody) -> web.Response:
    if body == "html":
        page = proxy_error_page(status)
        return web.Response(status=status, body=page, content_type=PROXY_PAGE_CONTENT_TYPE)
    if body == "empty":
        return web.Response(status=status)  # no body, no Content-Type
    message = _FAILURE_MESSAGES.get(status, "Simulated failure")
    error = json.dumps({"message": message}).encode()
    if body == "truncated":
        error = cut_short(error)
    return web.Response(status=status, body=error, headers={"Content-Type": _JSON_CONTENT_TYPE})


def _reset(request: web.Request) -> web.Response:
    """Reset the connection without an answer; the returned response is never sent."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns the close into a TCP RST, as an unreachable upstream would.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=499)
