"""A small client for Cryptum's orders API: read one order, list a store's recent orders.

The API is the truth about a payment; a callback is only a hint to ask it.
Failures are raised as `UpstreamFailure`, classified like WooCommerce's:
transient ones are retried, a missing order and a refused key are not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from .cryptum_models import CryptumOrder, ListedOrder, OrderPage
from .http_call import Service, call_json, retry_after_seconds
from .upstream import FailureKind, UpstreamFailure, parse_answer
from .url_path import path_segment

__all__ = [
    "MAX_PAGES",
    "PAGE_SIZE",
    "CryptumClient",
    "classify",
]

# The documented default and largest page of the order list.
PAGE_SIZE = 100
# A bound on one walk through the list, should the API keep answering full pages.
MAX_PAGES = 100


_SERVICE = "the Cryptum API"


def _error_message(answer: Any) -> str | None:
    """The message of Cryptum's error shape, or None for a body not shaped like it."""
    if isinstance(answer, dict):
        error = answer.get("error")
        for holder in (error, answer):
            message = holder.get("message") if isinstance(holder, dict) else None
            if isinstance(message, str):
                return message[:200]
    return None


def classify(status: int, message: str | None) -> UpstreamFailure:
    """The failure of an answer with `status`; `message` is None when the body is not Cryptum's."""
    text = message if message is not None else "no message"
    if status in (401, 403):
        return UpstreamFailure(
            FailureKind.CONFIG,
            f"Cryptum refused the API key ({status}: {text}): check cryptum_api_key "
            "and cryptum_environment",
            status,
        )
    if status == 404:
        if message is None:
            # Not Cryptum's answer: a proxy's page, or no API at this URL. Only
            # Cryptum saying so means the order is unknown; anything else must
            # not dead-letter a payment, so it is retried, loudly.
            return UpstreamFailure(
                FailureKind.CONFIG,
                "no Cryptum API answered at this URL (404 without Cryptum's error): check "
                "cryptum_api_url and cryptum_environment, and any proxy in between",
                status,
            )
        return UpstreamFailure(
            FailureKind.ORDER_NOT_FOUND, "Cryptum does not know this order", status
        )
    if status in (408, 425, 429) or status >= 500:
        return UpstreamFailure(FailureKind.TRANSIENT, f"Cryptum API answered {status}", status)
    return UpstreamFailure(
        FailureKind.REJECTED, f"Cryptum API refused the request ({status}: {text})", status
    )


def _classify_answer(status: int, answer: Any, headers: Mapping[str, str]) -> UpstreamFailure:
    failure = classify(status, _error_message(answer))
    failure.retry_after = retry_after_seconds(headers.get("Retry-After"))
    return failure


_API = Service(
    label="cryptum",
    name="the Cryptum API",
    classify=_classify_answer,
    tls_hint="check the system's CA certificates and any proxy in between",
)


class CryptumClient:
    """Calls one store's Cryptum API with its key."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        timeout_seconds: float,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def get_order(self, order_id: str) -> CryptumOrder:
        answer = await self._get(f"/orders/{path_segment(order_id)}", {})
        return parse_answer(CryptumOrder, answer, service=_SERVICE)

    async def list_orders(
        self,
        *,
        store_id: str,
        payment_status: str,
        since: datetime,
        limit: int = PAGE_SIZE,
        offset: int = 0,
    ) -> OrderPage:
        """One page of the store's orders in `payment_status`: the API takes one status."""
        query = {
            "storeId": store_id,
            "paymentStatus": payment_status,
            "startDate": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "limit": str(limit),
            "offset": str(offset),
            "withCount": "true",
        }
        answer = await self._get("/orders/", query)
        return parse_answer(OrderPage, answer, service=_SERVICE)

    async def orders_in_status(
        self,
        *,
        store_id: str,
        payment_status: str,
        since: datetime,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
    ) -> AsyncIterator[ListedOrder]:
        """Every listed order in `payment_status`, page after page until the API's `total`.

        Without a `total` in the answer, a short page is the last one. An API
        that pages by fewer orders than asked for is still walked to the end,
        since the offset advances by what each page really held.
        """
        offset = 0
        for _ in range(max_pages):
            page = await self.list_orders(
                store_id=store_id,
                payment_status=payment_status,
                since=since,
                limit=page_size,
                offset=offset,
            )
            for order in page.orders:
                yield order
            offset += len(page.orders)
            if not page.orders:
                return
            if page.total is not None and offset >= page.total:
                return
            if page.total is None and len(page.orders) < page_size:
                return

    async def _get(self, path: str, query: dict[str, str]) -> Any:
        # Built encoded: the path's segments are percent-encoded already, and a
        # URL parsed from text would have its dot segments resolved.
        url = URL(self._base_url + path, encoded=True)
        return await call_json(
            self._session,
            _API,
            "GET",
            url,
            headers={"x-api-key": self._api_key},
            params=query,
            timeout=self._timeout,
        )
