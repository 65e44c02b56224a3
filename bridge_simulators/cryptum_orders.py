"""The state of a simulated Cryptum Checkout: stores, orders and their JSON; no HTTP here.

Orders are shaped like the examples in Cryptum's "Orders" documentation: a read
of one order carries the store as an object, a list carries only its id, and
both carry `ecommerce` (as documented for answers) next to `ecommerceType` (as
sent on creation). Timestamps are what a Node.js API prints, ISO 8601 in UTC
with milliseconds and a `Z`; listing filters compare them to the millisecond,
so an `updatedAt` read back and sent as `endDate` still matches its order.

Only "Payment was successful" is an observed callback message; the messages
for the other statuses are the simulator's.
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "DEFAULT_CUSTOMER",
    "DEFAULT_MESSAGES",
    "ORDER_STATUSES",
    "CryptumBackend",
    "OrderQuery",
    "SimCryptumOrder",
    "SimCryptumStore",
    "UnknownOrderError",
    "iso_timestamp",
    "list_json",
    "order_json",
]

ORDER_STATUSES = ("pending", "on-hold", "confirmed", "failed", "cancelled")

DEFAULT_MESSAGES = {
    "pending": "Waiting for payment",
    "on-hold": "Payment received, waiting for confirmations",
    "confirmed": "Payment was successful",
    "failed": "Payment failed",
    "cancelled": "Order was cancelled",
}

# A made-up customer: `deliveryInfo` is personal data, so no test needs a real-looking one.
DEFAULT_CUSTOMER = {
    "firstName": "Test",
    "lastName": "Customer",
    "email": "test.customer@example.com",
    "country": "BR",
    "address": "Rua de Teste, 100",
}

# Units of each currency per US dollar, roughly as they were when the docs were written;
# `marketRates` rebases them to the order's currency as the documented example does.
_RATES_PER_USD = {
    "BRL": Decimal("5.26"),
    "USD": Decimal("1"),
    "EUR": Decimal("0.92"),
    "JPY": Decimal("132.5"),
    "BTC": Decimal("0.0000416"),
    "ETH": Decimal("0.000597"),
    "XLM": Decimal("12.64"),
    "XRP": Decimal("2.73"),
    "BNB": Decimal("0.00323"),
    "MDA": Decimal("20.2"),
    "CELO": Decimal("1.685"),
    "HTR": Decimal("14.41"),
    "ADA": Decimal("2.889"),
    "AVAX": Decimal("0.0605"),
    "MATIC": Decimal("0.8425"),
    "SOL": Decimal("0.0476"),
}
_RATE_PLACES = Decimal("1e-8")


class UnknownOrderError(KeyError):
    """No order has this id."""


def iso_timestamp(timestamp: float) -> str:
    """`Date.prototype.toISOString`: `2026-11-22T11:30:36.123Z`."""
    moment = datetime.fromtimestamp(_millis(timestamp) / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _millis(timestamp: float) -> int:
    return math.floor(timestamp * 1000)


def market_rates(currency: str) -> dict[str, str]:
    """Units of each currency per one unit of `currency` (USD-based if it is not listed)."""
    base = _RATES_PER_USD.get(currency.upper(), Decimal("1"))
    return {
        code: f"{(rate / base).quantize(_RATE_PLACES).normalize():f}"
        for code, rate in _RATES_PER_USD.items()
    }


@dataclass(frozen=True)
class SimCryptumStore:
    id: str
    name: str
    api_key: str
    webhook_secret: str


@dataclass
class SimCryptumOrder:
    """One payment request; `status` is what the API calls `paymentStatus`."""

    id: str
    store_id: str
    ecommerce_order_id: str
    total: str
    currency: str
    callback_url: str
    delivery_info: dict[str, str]
    status: str
    created_at: float
    updated_at: float
    ecommerce_type: str = "wordpress"
    transactions: list[tuple[str, str]] = field(default_factory=list)  # (protocol, hash)
    message: str | None = None  # the next callback's message; None: the status's default
    cancel_return_url: str | None = None
    success_return_url: str | None = None
    session_token: str = field(default_factory=lambda: "eyJhbGciOiJIUzI1NiJ9." + _token())
    revision: int = 0  # orders updated in the same millisecond still list newest first

    @property
    def callback_message(self) -> str:
        return self.message if self.message is not None else DEFAULT_MESSAGES[self.status]


def _token() -> str:
    return secrets.token_urlsafe(48)


def transactions_json(transactions: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"protocol": protocol, "hash": hash_} for protocol, hash_ in transactions]


def order_json(order: SimCryptumOrder, store: SimCryptumStore) -> dict[str, Any]:
    """The order as `GET /orders/{id}` and checkout answer it."""
    return {
        **_common_json(order),
        "paymentStatus": order.status,
        "transactions": transactions_json(order.transactions),
        "store": {"id": store.id, "name": store.name},
    }


def list_json(order: SimCryptumOrder) -> dict[str, Any]:
    """The order as an entry of `GET /orders/`: the store as its id alone.

    The documented list entry shows neither `paymentStatus` nor `transactions`,
    so the simulator leaves them out: a client must know an entry's status
    from the `paymentStatus` it asked for, and read the order for the rest.
    """
    return {**_common_json(order), "store": order.store_id}


def _common_json(order: SimCryptumOrder) -> dict[str, Any]:
    return {
        "id": order.id,
        "callbackUrl": order.callback_url,
        "sessionToken": order.session_token,
        "ecommerceOrderId": order.ecommerce_order_id,
        "ecommerce": order.ecommerce_type,
        "ecommerceType": order.ecommerce_type,
        "orderTotal": order.total,
        "orderCurrency": order.currency,
        "storeMarkupPercentage": "0",
        "storeDiscountPercentage": "0",
        "cancelReturnUrl": order.cancel_return_url,
        "successReturnUrl": order.success_return_url,
        "deliveryInfo": dict(order.delivery_info),
        "marketRates": market_rates(order.currency),
        "createdAt": iso_timestamp(order.created_at),
        "updatedAt": iso_timestamp(order.updated_at),
    }


@dataclass(frozen=True)
class OrderQuery:
    """The filters of `GET /orders/`, already validated; times in milliseconds, inclusive."""

    store_id: str | None = None
    statuses: frozenset[str] | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    limit: int = 100
    offset: int = 0


class CryptumBackend:
    """Every store and order of the simulated Cryptum."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.stores: dict[str, SimCryptumStore] = {}
        self.orders: dict[str, SimCryptumOrder] = {}
        self._revisions = 0

    def add_store(self, store_id: str, *, api_key: str, webhook_secret: str, name: str) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.stores[store_id] = SimCryptumStore(store_id, name, api_key, webhook_secret)

    def store_for_key(self, api_key: str) -> SimCryptumStore | None:
        return next((store for store in self.stores.values() if store.api_key == api_key), None)

    def store(self, store_id: str) -> SimCryptumStore:
        try:
            return self.stores[store_id]
        except KeyError:
            raise ValueError(f"unknown store {store_id!r}: add_store() it first") from None

    def order(self, order_id: str) -> SimCryptumOrder:
        try:
            return self.orders[order_id]
        except KeyError:
            raise UnknownOrderError(order_id) from None

    def create_order(
        self,
        *,
        store_id: str,
        ecommerce_order_id: str,
        total: str,
        currency: str,
        callback_url: str,
        customer: Mapping[str, str] | None,
        status: str,
        ecommerce_type: str = "wordpress",
        cancel_return_url: str | None = None,
        success_return_url: str | None = None,
    ) -> SimCryptumOrder:
        self.store(store_id)
        _check_status(status)
        try:
            Decimal(total)
        except InvalidOperation:
            raise ValueError(f"total must be a decimal string, not {total!r}") from None
        now = self.clock()
        order = SimCryptumOrder(
            id=str(uuid.uuid4()),
            store_id=store_id,
            ecommerce_order_id=ecommerce_order_id,
            total=total,
            currency=currency,
            callback_url=callback_url,
            delivery_info=dict(DEFAULT_CUSTOMER if customer is None else customer),
            status=status,
            created_at=now,
            updated_at=now,
            ecommerce_type=ecommerce_type,
            cancel_return_url=cancel_return_url,
            success_return_url=success_return_url,
            revision=self._next_revision(),
        )
        self.orders[order.id] = order
        return order

    def set_status(
        self,
        order_id: str,
        status: str,
        *,
        transactions: Sequence[tuple[str, str]] | None,
        message: str | None,
    ) -> SimCryptumOrder:
        """Move the order; `transactions=None` keeps the ones it has."""
        order = self.order(order_id)
        _check_status(status)
        order.status = status
        if transactions is not None:
            order.transactions = [(protocol, hash_) for protocol, hash_ in transactions]
        order.message = message
        order.updated_at = self.clock()
        order.revision = self._next_revision()
        return order

    def query(self, query: OrderQuery) -> tuple[int, list[SimCryptumOrder]]:
        """The total that match and the requested page of them, newest `updatedAt` first."""
        matching = [order for order in self.orders.values() if _matches(order, query)]
        matching.sort(key=lambda order: (_millis(order.updated_at), order.revision), reverse=True)
        return len(matching), matching[query.offset : query.offset + query.limit]

    def _next_revision(self) -> int:
        self._revisions += 1
        return self._revisions


def _check_status(status: str) -> None:
    if status not in ORDER_STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {', '.join(ORDER_STATUSES)}")


def _matches(order: SimCryptumOrder, query: OrderQuery) -> bool:
    updated = _millis(order.updated_at)
    return (
        (query.store_id is None or order.store_id == query.store_id)
        and (query.statuses is None or order.status in query.statuses)
        and (query.start_ms is None or updated >= query.start_ms)
        and (query.end_ms is None or updated <= query.end_ms)
    )
