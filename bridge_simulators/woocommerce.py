"""A simulated WooCommerce shop, served over real HTTP or HTTPS by aiohttp.

It answers the REST calls the bridge makes the way WooCommerce 11.0.1 answered
them in the recordings under `tests/fixtures/woocommerce/`: same status codes,
error codes and messages, authentication rules, stock changes and notes. The
shop's state and order transitions live in `woocommerce_shop`, key
authentication in `woocommerce_auth`, routing and validation in
`woocommerce_rest`; this module is the HTTP edge plus the knobs tests turn:
injected faults, latency and the log of requests.

Not simulated: WordPress pages (non-REST URLs get a bare 404), CORS, cookie
logins, and everything `woocommerce_rest` and `woocommerce_shop` list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from bridge_simulators.woocommerce_auth import (
    ApiKey,
    AuthRequest,
    NonceStore,
    Permissions,
    authenticate,
    check_key_permissions,
)
from bridge_simulators.woocommerce_errors import RestError
from bridge_simulators.woocommerce_faults import (
    Fault,
    FaultBody,
    FaultKind,
    FaultQueue,
    fault_answer,
)
from bridge_simulators.woocommerce_rest import RestApi, RestRequest, RestResponse
from bridge_simulators.woocommerce_shop import Shop, SimNote, SimOrder, SimProduct

__all__ = ["RECORDED_LATENCY_BY_METHOD", "RecordedRequest", "WooCommerceSimulator"]

# Typical latencies of the recorded shop (fixtures README: GET ~100-125 ms, a
# status-changing PUT 250-425 ms, a no-op PUT ~130 ms, a note POST ~110 ms), for
# `latency_by_method=` when throughput figures should resemble a real shop.
RECORDED_LATENCY_BY_METHOD = {"GET": 0.11, "PUT": 0.3, "POST": 0.11}

# Headers WordPress sends with every REST answer (recorded in every fixture).
_WORDPRESS_HEADERS = {
    "Content-Type": "application/json; charset=UTF-8",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Access-Control-Expose-Headers": "X-WP-Total, X-WP-TotalPages, Link",
    "Access-Control-Allow-Headers": (
        "Authorization, X-WP-Nonce, Content-Disposition, Content-MD5, Content-Type"
    ),
}
# `nocache_headers()`: WordPress sends them only to a logged-in caller.
_NO_CACHE_HEADERS = {
    "Expires": "Wed, 11 Jan 1984 05:00:00 GMT",
    "Cache-Control": "no-cache, must-revalidate, max-age=0, no-store, private",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    status: int | None  # None: no answer was sent (reset, dropped or held)
    fault: FaultKind | None = None


class WooCommerceSimulator:
    """One simulated shop; `start()` serves it on a port, `app()` gives the bare application."""

    def __init__(
        self,
        *,
        https: bool = False,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        home_url: str | None = None,
        clock: Callable[[], float] = time.time,
        latency: float = 0.0,
        latency_by_method: Mapping[str, float] | None = None,
    ) -> None:
        if https and (tls_cert is None or tls_key is None):
            raise ValueError("https=True needs tls_cert and tls_key")
        self.https = https
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        # WordPress's home URL: OAuth signatures and links use it, never the Host header.
        # None means the URL the server is bound to.
        self.home_url = home_url.rstrip("/") if home_url else None
        self.clock = clock
        self.latency = latency  # seconds added to every request
        self.latency_by_method = dict(latency_by_method or {})  # replaces `latency` per method
        self.requests: list[RecordedRequest] = []
        self.shop = Shop(clock)
        self.orders: dict[int, SimOrder] = self.shop.orders
        self.products: dict[int, SimProduct] = self.shop.products
        self.keys: dict[str, ApiKey] = {}
        self._nonces = NonceStore()
        self._faults = FaultQueue()
        self._api = RestApi(self.shop)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._bound_url: str | None = None

    # The shop ------------------------------------------------------------------

    def add_key(
        self, consumer_key: str, consumer_secret: str, *, permissions: Permissions = "read_write"
    ) -> None:
        if permissions not in ("read", "write", "read_write"):
            raise ValueError(f"unknown permissions {permissions!r}")
        self.keys[consumer_key] = ApiKey(consumer_key, consumer_secret, permissions)

    def add_product(
        self,
        product_id: int,
        name: str,
        *,
        stock: int | None = 100,
        price: str = "10.00",
        sku: str = "",
    ) -> SimProduct:
        return self.shop.add_product(product_id, name, stock=stock, price=price, sku=sku)

    def add_order(
        self,
        order_id: int,
        *,
        status: str = "pending",
        items: Sequence[tuple[int, int]] = ((10, 1),),
        total: str | None = None,
        currency: str = "USD",
        payment_method: str = "cryptumcheckout_gateway",
        payment_method_title: str = "Cryptum Checkout",
        virtual: bool = False,
    ) -> SimOrder:
        return self.shop.add_order(
            order_id,
            status=status,
            items=items,
            total=total,
            currency=currency,
            payment_method=payment_method,
            payment_method_title=payment_method_title,
            virtual=virtual,
        )

    def seed_fixture_shop(self) -> None:
        """The shop the fixtures were recorded against (see their README)."""
        self.add_product(10, "Cryptum Test Widget", stock=100, price="10.00", sku="CRYPTUM-WIDGET")
        for order_id, quantity in ((11, 2), (12, 1), (13, 3)):
            self.add_order(order_id, items=[(10, quantity)])

    def notes(self, order_id: int) -> list[SimNote]:
        """The order's notes, oldest first."""
        return self.shop.notes(order_id)

    # Fault knobs: each applies to the next `count` WooCommerce REST requests -------

    # `method` limits a fault to requests with that method (the others pass).

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        retry_after: int | None = None,
        method: str | None = None,
        body: FaultBody = "wordpress",
    ) -> None:
        """Answer with `status` and a failure's `body`, without touching the shop.

        `body` is "wordpress" (a WordPress JSON error), "html" (a proxy's error
        page), "empty", or "truncated" (WordPress's JSON cut halfway); see
        `woocommerce_faults`.
        """
        fault = Fault("fail", status=status, retry_after=retry_after, method=method, body=body)
        self._faults.add(fault, count)

    def time_out_next(
        self, count: int = 1, *, seconds: float = 30.0, method: str | None = None
    ) -> None:
        """Hold the request unanswered for `seconds` (or until close), then drop the connection."""
        self._faults.add(Fault("time_out", seconds=seconds, method=method), count)

    def reset_next(self, count: int = 1, *, method: str | None = None) -> None:
        """Reset the connection (TCP RST) before reading or applying the request."""
        self._faults.add(Fault("reset", method=method), count)

    def drop_response_next(self, count: int = 1, *, method: str | None = None) -> None:
        """Apply the request, then close the connection without answering."""
        self._faults.add(Fault("drop_response", method=method), count)

    @property
    def faults_pending(self) -> int:
        """How many injected faults no request has taken yet."""
        return len(self._faults)

    # Serving ---------------------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        """The home URL: the given one, else the bound one once started."""
        return self.home_url or self._bound_url

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0: any free port); returns the home URL."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        self._closing = asyncio.Event()
        # A short shutdown: close() releases held requests, nothing else lingers.
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=self._ssl_context())
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        netloc = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._bound_url = f"{'https' if self.https else 'http'}://{netloc}:{bound_port}"
        return self.base_url or self._bound_url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WooCommerceSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.https:
            return None
        assert self.tls_cert is not None and self.tls_key is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    # Requests --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        home = self._home(request)
        route = _rest_route(request, home)
        is_rest = route is not None and route.startswith("/wc/")
        fault = self._faults.take(request.method) if is_rest else None
        if fault is not None and fault.kind == "reset":
            return self._abort(request, fault, reset=True)
        delay = self.latency_by_method.get(request.method, self.latency)
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None and fault.kind == "time_out":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.seconds)
            return self._abort(request, fault)
        if fault is not None and fault.kind == "fail":
            response = _fault_response(fault, home)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(fault.retry_after)
            self.requests.append(
                RecordedRequest(request.method, request.path, fault.status, "fail")
            )
            return response
        if route is None:
            response = web.Response(status=404, text="Not Found")
        else:
            response = _json_response(await self._answer(request, route, home), home)
        if fault is not None:  # drop_response: the request was applied above
            return self._abort(request, fault)
        self.requests.append(RecordedRequest(request.method, request.path, response.status))
        return response

    async def _answer(self, request: web.Request, route: str, home: str) -> RestResponse:
        query = list(request.url.query.items())
        params, form, json_error = await _body_params(request)
        key = None
        try:
            key = authenticate(
                AuthRequest(
                    method=request.method,
                    request_uri=request.raw_path,
                    query=dict(query),
                    form=form if request.method == "POST" else {},  # PHP's $_POST
                    authorization=request.headers.get("Authorization"),
                    is_ssl=request.secure,
                ),
                keys=self.keys,
                nonces=self._nonces,
                home_url=home,
                now=self.clock(),
            )
            if key is not None:
                check_key_permissions(key, request.method)
            merged = {**dict(query), **params}  # WordPress: the body wins over the query
            rest_request = RestRequest(request.method, route, query, merged, key, json_error)
            answer = self._api.dispatch(rest_request, home)
        except RestError as error:
            answer = RestResponse(error.status, error.body())
        if key is not None:
            answer.headers.update(_NO_CACHE_HEADERS)
        elif request.method == "GET":
            # `rest_send_cors_headers`: GETs by callers who are not logged in vary by Origin.
            answer.headers["Vary"] = "Origin"
        return answer

    def _home(self, request: web.Request) -> str:
        if self.base_url is not None:
            return self.base_url
        # Served through app() without start(): the address the request came in on.
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        host, port = (sockname[0], sockname[1]) if sockname else ("127.0.0.1", 80)
        netloc = f"[{host}]" if ":" in host else host
        return f"{'https' if request.secure else 'http'}://{netloc}:{port}"

    def _abort(self, request: web.Request, fault: Fault, *, reset: bool = False) -> web.Response:
        """Close the connection without an answer; the returned response is never sent."""
        self.requests.append(RecordedRequest(request.method, request.path, None, fault.kind))
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if reset and sock is not None:
                # Linger 0 turns the close into a TCP RST, as a crashed proxy would send.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return web.Response(status=499)


async def _body_params(request: web.Request) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """The parameters of a JSON or form body, the form alone (PHP's $_POST), any JSON error."""
    body = await request.read()
    if not body:
        return {}, {}, None
    if request.content_type == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError:
            return {}, {}, "Syntax error"
        return (decoded if isinstance(decoded, dict) else {}), {}, None
    if request.content_type == "application/x-www-form-urlencoded":
        form = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
        return dict(form), form, None
    return {}, {}, None


def _rest_route(request: web.Request, home: str) -> str | None:
    """The REST route a URL asks for, pretty (`/wp-json/...`) or plain (`/?rest_route=...`)."""
    path = request.path
    home_path = urlsplit(home).path.rstrip("/")
    if home_path and path.startswith(home_path + "/"):
        path = path[len(home_path) :]
    if path == "/wp-json" or path.startswith("/wp-json/"):
        return path[len("/wp-json") :] or "/"
    if path in ("/", "/index.php") and "rest_route" in request.query:
        return request.query["rest_route"]
    return None


def _wordpress_headers(headers: Mapping[str, str], home: str) -> dict[str, str]:
    merged = {**_WORDPRESS_HEADERS, **headers}
    # WordPress sends its API-root Link unless the answer has links of its own (pagination).
    merged.setdefault("Link", f'<{home}/wp-json/>; rel="https://api.w.org/"')
    return merged


def _json_response(answer: RestResponse, home: str) -> web.Response:
    headers = _wordpress_headers(answer.headers, home)
    return web.Response(
        status=answer.status, body=json.dumps(answer.body).encode(), headers=headers
    )


def _fault_response(fault: Fault, home: str) -> web.Response:
    answer = fault_answer(fault.status, fault.body)
    headers = {"Content-Type": answer.content_type}
    if answer.from_wordpress:
        headers = _wordpress_headers(headers, home)
    return web.Response(status=fault.status, body=answer.body, headers=headers)
