"""A small client for Cryptum's orders API: read one order, list a store's recent orders.

The API is the truth about a payment; a callback is only a hint to ask it.
Failures are raised as `UpstreamFailure`, classified like WooCommerce's:
transient ones are retried, a missing order and a refused key are not.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .payload import Transaction
from .upstream import FailureKind, UpstreamFailure, connection_failure, parse_answer

__all__ = ["CryptumClient", "CryptumOrder", "OrderPage", "classify"]


_SERVICE = "the Cryptum API"


class StoreRef(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str


class CryptumOrder(BaseModel):
    """The fields of a Cryptum order the bridge acts on; the rest (customer data) is ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    ecommerce_order_id: str = Field(alias="ecommerceOrderId")
    payment_status: str = Field(alias="paymentStatus")
    order_total: str | None = Field(default=None, alias="orderTotal")
    order_currency: str | None = Field(default=None, alias="orderCurrency")
    store: StoreRef | None = None
    transactions: list[Transaction] | None = None

    @field_validator("ecommerce_order_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("store", mode="before")
    @classmethod
    def _store_reference(cls, value: Any) -> Any:
        # A single order names its store as an object, a listed order by its id alone.
        return {"id": value} if isinstance(value, str) else value

    @field_validator("order_total", mode="before")
    @classmethod
    def _total_as_decimal_text(cls, value: Any) -> Any:
        # The API documents a decimal string; accept a JSON number without float noise.
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return str(Decimal(str(value)))
            except InvalidOperation:
                return None
        return value

    @property
    def store_id(self) -> str | None:
        return self.store.id if self.store is not None else None


class OrderPage(BaseModel):
    total: int | None = None
    orders: list[CryptumOrder]


def _error_message(answer: Any) -> str:
    if isinstance(answer, dict):
        error = answer.get("error")
        for holder in (error, answer):
            message = holder.get("message") if isinstance(holder, dict) else None
            if isinstance(message, str):
                return message[:200]
    return "no message"


def classify(status: int, message: str) -> UpstreamFailure:
    if status in (401, 403):
        return UpstreamFailure(
            FailureKind.CONFIG,
            f"Cryptum refused the API key ({status}: {message}): check cryptum_api_key "
            "and cryptum_environment",
            status,
        )
    if status == 404:
        return UpstreamFailure(
            FailureKind.ORDER_NOT_FOUND, "Cryptum does not know this order", status
        )
    if status in (408, 425, 429) or status >= 500:
        return UpstreamFailure(FailureKind.TRANSIENT, f"Cryptum API answered {status}", status)
    return UpstreamFailure(
        FailureKind.REJECTED, f"Cryptum API refused the request ({status}: {message})", status
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
        answer = await self._get(f"/orders/{order_id}", {})
        return parse_answer(CryptumOrder, answer, service=_SERVICE)

    async def list_orders(
        self,
        *,
        store_id: str,
        statuses: list[str],
        since: datetime,
        limit: int = 100,
        offset: int = 0,
    ) -> OrderPage:
        query = {
            "storeId": store_id,
            "paymentStatus": ",".join(statuses),
            "startDate": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "limit": str(limit),
            "offset": str(offset),
            "withCount": "true",
        }
        answer = await self._get("/orders/", query)
        return parse_answer(OrderPage, answer, service=_SERVICE)

    async def _get(self, path: str, query: dict[str, str]) -> Any:
        try:
            return await self._send(path, query)
        except UpstreamFailure as failure:
            failure.service = "cryptum"
            raise

    async def _send(self, path: str, query: dict[str, str]) -> Any:
        try:
            async with self._session.get(
                self._base_url + path,
                params=query,
                headers={"x-api-key": self._api_key, "Accept": "application/json"},
                timeout=self._timeout,
            ) as response:
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = None
                if response.status >= 300:
                    raise classify(response.status, _error_message(answer))
                return answer
        except TimeoutError:
            raise connection_failure("no answer from the Cryptum API") from None
        except aiohttp.ClientError as error:
            raise connection_failure(f"Cryptum API unreachable: {type(error).__name__}") from None
