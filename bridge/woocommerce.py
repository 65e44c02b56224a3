"""A small WooCommerce REST client: the four calls the delivery worker makes.

Authentication follows WooCommerce: HTTP Basic over HTTPS, OAuth 1.0a
one-legged over plain HTTP, signed against `woocommerce.url` (the site's
home URL) with a fresh nonce and timestamp on every request, retries
included. Every failure is raised as a classified `UpstreamFailure`.

Ids are percent-encoded into the path (`url_path.path_segment`) and the URL
is handed to aiohttp already encoded, so yarl sends it byte for byte: it
neither decodes `%2E%2E` into a `..` segment and drops it nor re-quotes
what was signed.
"""

from __future__ import annotations

import base64
import functools
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from .config import WooCommerceConfig
from .http_call import Service, call_json, retry_after_seconds
from .oauth1 import oauth_query
from .upstream import FailureKind, UpstreamFailure, parse_answer
from .url_path import path_segment
from .woocommerce_errors import classify
from .woocommerce_models import WooNote, WooOrder

__all__ = ["WooCommerceClient", "tls_context"]

API_PREFIX = "/wp-json/wc/v3"


def tls_context(config: WooCommerceConfig) -> ssl.SSLContext | None:
    """The shop's own TLS context where `ca_file` adds a CA; else None: aiohttp's default.

    Certificates are always verified. aiohttp loads the system's trust store
    into its verifying context once, when it is imported; a copy of that
    context for every store cost 0.6 MiB and about 100 ms of loading
    certificates each, at start and again at every reload, on the event
    loop (docs/benchmarks.md, "Start to ready, memory").
    """
    if config.ca_file is None:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(config.ca_file))
    return context


def _classify_answer(
    status: int, answer: Any, headers: Mapping[str, str], *, auth_method: str
) -> UpstreamFailure:
    error = answer if isinstance(answer, dict) else {}
    return classify(
        status,
        error.get("code"),
        error.get("message"),
        auth_method=auth_method,
        retry_after=retry_after_seconds(headers.get("Retry-After")),
    )


class WooCommerceClient:
    """Calls one shop's REST API."""

    def __init__(
        self,
        config: WooCommerceConfig,
        *,
        session: aiohttp.ClientSession,
        timeout_seconds: float,
    ) -> None:
        self._config = config
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._ssl = tls_context(config) if config.url.startswith("https://") else None
        self._home = URL(config.url)
        if config.auth == "auto":
            self.auth_method = "basic" if config.url.startswith("https://") else "oauth1"
        else:
            self.auth_method = config.auth
        self._service = Service(
            label="woocommerce",
            name="WooCommerce",
            classify=functools.partial(_classify_answer, auth_method=self.auth_method),
            tls_hint="check woocommerce.ca_file",
        )

    async def get_order(self, order_id: str) -> WooOrder:
        answer = await self._request("GET", ("orders", order_id))
        return parse_answer(WooOrder, answer, service="WooCommerce")

    async def update_order(self, order_id: str, changes: dict[str, Any]) -> WooOrder:
        answer = await self._request("PUT", ("orders", order_id), body=changes)
        return parse_answer(WooOrder, answer, service="WooCommerce")

    async def list_orders(self, *, per_page: int = 1) -> list[WooOrder]:
        """The newest orders; reading a list needs read permission even when it is empty."""
        answer = await self._request("GET", ("orders",), query={"per_page": str(per_page)})
        if not isinstance(answer, list):
            raise UpstreamFailure(
                FailureKind.TRANSIENT, "WooCommerce sent orders that are not a list"
            )
        return [parse_answer(WooOrder, order, service="WooCommerce") for order in answer]

    async def list_notes(self, order_id: str) -> list[WooNote]:
        answer = await self._request("GET", ("orders", order_id, "notes"))
        if not isinstance(answer, list):
            raise UpstreamFailure(
                FailureKind.TRANSIENT, "WooCommerce sent notes that are not a list"
            )
        return [parse_answer(WooNote, note, service="WooCommerce") for note in answer]

    async def add_note(self, order_id: str, text: str) -> WooNote:
        body = {"note": text, "customer_note": False}
        answer = await self._request("POST", ("orders", order_id, "notes"), body=body)
        return parse_answer(WooNote, answer, service="WooCommerce")

    def _authenticate(
        self, method: str, path: str, query: dict[str, str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and the full query of one request (a fresh nonce each time).

        `path` is the request path after the home URL exactly as it goes on
        the wire, percent-encoding included: WooCommerce signs the home URL
        joined with the raw request path.
        """
        key = self._config.consumer_key
        secret = self._config.consumer_secret
        assert key is not None and secret is not None
        if self.auth_method == "basic":
            pair = f"{key.get_secret_value()}:{secret.get_secret_value()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}, query
        signed = oauth_query(
            method,
            self._config.url + path,
            consumer_key=key.get_secret_value(),
            consumer_secret=secret.get_secret_value(),
            query=query,
        )
        return {}, signed

    async def _request(
        self,
        method: str,
        segments: tuple[str, ...],
        *,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        path, url = self._url(segments)
        headers, signed_query = self._authenticate(method, path, query or {})
        return await call_json(
            self._session,
            self._service,
            method,
            url,
            headers=headers,
            params=signed_query,
            body=body,
            timeout=self._timeout,
            tls=self._ssl,
        )

    def _url(self, segments: tuple[str, ...]) -> tuple[str, URL]:
        """The API path under the home URL, and the full URL to send as it is."""
        try:
            path = API_PREFIX + "".join("/" + path_segment(segment) for segment in segments)
        except ValueError:
            # An empty id would name the collection (`/orders/`), not an item in it.
            raise UpstreamFailure(
                FailureKind.REJECTED,
                "an empty id names no WooCommerce resource",
                service=self._service.label,
            ) from None
        home_path = self._home.raw_path.rstrip("/")
        return path, self._home.with_path(home_path + path, encoded=True)
