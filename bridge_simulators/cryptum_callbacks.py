"""Cryptum's payment callbacks: the body it POSTs and the sender that retries it.

The body holds the fields observed in real callbacks, in their order. It is
compact JSON by default; pretty-printed bodies (indent 2, as `JSON.stringify`
with an indent prints them) are signed over the reference plugin's canonical
form (`cryptum_signing`), which drops the indentation: they carry the same
signature as the compact body unless a string holds an escaped quote, which
the rule misreads.

How often and how long the real Cryptum retries a refused callback is not
documented; the simulator retries after each delay of its schedule and then
gives up, which is the case the bridge's recovery of missed payments is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bridge_simulators.cryptum_orders import SimCryptumOrder, transactions_json

__all__ = ["SIGNATURE_HEADER", "CallbackDelivery", "CallbackSender", "callback_body"]

SIGNATURE_HEADER = "X-Webhook-Signature"


@dataclass
class CallbackDelivery:
    """One callback, sent or lost, and how its receiver answered each attempt."""

    order_id: str
    body: bytes
    signature: str | None  # the header sent; None: no header
    lost: bool = False  # never sent: the "callback never arrived" case
    attempts: list[int | None] = field(default_factory=list)  # HTTP status; None: no answer
    delivered: bool = False  # an attempt was answered with a 2xx
    final_answer: Any = None  # the decoded JSON of the last answer, if it was JSON
    url: str = ""

    @property
    def payload(self) -> dict[str, Any]:
        """The body, decoded."""
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


def callback_body(
    order: SimCryptumOrder, *, status: str | None = None, pretty: bool = False
) -> bytes:
    """The callback for the order's current state; `status` overrides the body's status only."""
    payload = {
        "message": order.callback_message,
        "status": order.status if status is None else status,
        "orderId": order.id,
        "ecommerceOrderId": order.ecommerce_order_id,
        "storeId": order.store_id,
        "transactions": transactions_json(order.transactions),
        "updatedProducts": None,
    }
    # Like `JSON.stringify`: non-ASCII characters as they are, not as \u escapes.
    if pretty:
        return json.dumps(payload, indent=2, ensure_ascii=False).encode()
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class CallbackSender:
    """POSTs callbacks, retrying a non-2xx answer or a connection error on a schedule."""

    def __init__(self, *, retry_delays: Sequence[float], timeout: float) -> None:
        if any(delay < 0 for delay in retry_delays):
            raise ValueError("retry delays must not be negative")
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout  # seconds per attempt; a timed-out attempt has no answer
        self._session: aiohttp.ClientSession | None = None
        self._closed = asyncio.Event()

    async def deliver(self, delivery: CallbackDelivery) -> None:
        """Send until an attempt gets a 2xx, the schedule runs out, or the sender closes."""
        for attempt, delay in enumerate((0.0, *self.retry_delays)):
            if attempt and await self._closed_within(delay):
                return
            status, answer = await self._post(delivery)
            delivery.attempts.append(status)
            delivery.final_answer = answer
            if status is not None and 200 <= status < 300:
                delivery.delivered = True
                return

    async def close(self) -> None:
        self._closed.set()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, delivery: CallbackDelivery) -> tuple[int | None, Any]:
        headers = {"Content-Type": "application/json"}
        if delivery.signature is not None:
            headers[SIGNATURE_HEADER] = delivery.signature
        try:
            async with self._client().post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                raw = await response.read()
                return response.status, _decoded(raw)
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None, None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # A fresh connection per attempt: a keep-alive connection the receiver
            # closed in between would otherwise fail a POST, which is never resent.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
            self._closed = asyncio.Event()
        return self._session

    async def _closed_within(self, delay: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), delay)
        return self._closed.is_set()


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
