"""Cryptum's orders API as a function of the request: authentication, routing, validation.

Routes, relative to the base path `/plugins`:
- `GET /orders/{orderId}`: one order;
- `GET /orders/` (or `/orders`): a page of a store's orders, newest `updatedAt`
  first, with `storeId` (required, as documented), `paymentStatus` (ONE of the
  documented enum values, as documented: a comma list is refused), `startDate`
  and `endDate` (ISO 8601 date or date-time, inclusive; a bare date covers its
  whole UTC day), `limit` (1 to 100, default 100), `offset` (default 0) and
  `withCount` or `withTotal` (`true` adds `total`, the number of matching
  orders);
- `POST /orders/checkout`: create an order from the documented fields.

Every request needs an `x-api-key` header holding a store's key. Errors are
`{"error": {"message": ...}}`. Where the documentation is silent the
simulator is strict, so that a client cannot come to rely on leniency the
real API may not have: a query parameter the documentation does not list is
a 400; parameter values outside the documented ones are a 400 (the real
API's exact limits and messages are not documented); a key may list only its
own store's orders (403), though it may read any single order (the bridge
checks a read order's store itself). Not simulated: the order update route,
bearer-token authentication and the store API.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from bridge_simulators.cryptum_orders import (
    ORDER_STATUSES,
    CryptumBackend,
    OrderQuery,
    UnknownOrderError,
    list_json,
    order_json,
)

__all__ = ["MAX_LIMIT", "ApiError", "ApiRequest", "ApiResponse", "CryptumApi"]

MAX_LIMIT = 100
_DAY_MS = 86_400_000
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DIGITS = re.compile(r"\d{1,9}")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
# The query parameters the "Get Orders" documentation lists; any other is refused.
_LIST_PARAMETERS = frozenset(
    {
        "limit",
        "offset",
        "storeId",
        "paymentStatus",
        "startDate",
        "endDate",
        "withCount",
        "withTotal",
    }
)
# The documented creation fields; `paymentStatus` and the return URLs are optional.
_REQUIRED_FIELDS = (
    "ecommerceOrderId",
    "ecommerceType",
    "orderTotal",
    "orderCurrency",
    "callbackUrl",
    "store",
    "deliveryInfo",
)
_REQUIRED_CUSTOMER_FIELDS = ("firstName", "lastName", "email", "country")
_CREATION_STATUSES = ("pending", "on-hold")  # "Either "pending" or "on-hold"", say the docs
_ECOMMERCE_TYPES = ("wordpress", "api")


class ApiError(Exception):
    """An answer other than success, in Cryptum's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> ApiResponse:
        return ApiResponse(self.status, {"error": {"message": self.message}})


@dataclass(frozen=True)
class ApiRequest:
    method: str
    route: str  # the path below the base path, e.g. "/orders/3f0c..."
    query: Mapping[str, str]
    api_key: str | None
    body: bytes = b""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, Any]


class CryptumApi:
    def __init__(self, backend: CryptumBackend) -> None:
        self.backend = backend

    def dispatch(self, request: ApiRequest) -> ApiResponse:
        try:
            self._authenticate(request.api_key)
            return self._route(request)
        except ApiError as error:
            return error.response()

    def _authenticate(self, api_key: str | None) -> None:
        if not api_key:
            raise ApiError(401, "Unauthorized")
        if self.backend.store_for_key(api_key) is None:
            raise ApiError(401, "Invalid API key")

    def _route(self, request: ApiRequest) -> ApiResponse:
        route = request.route
        if route in ("/orders", "/orders/") and request.method == "GET":
            return self._list(request.query, request.api_key or "")
        if route == "/orders/checkout" and request.method == "POST":
            return self._checkout(request.body)
        order_id = route.removeprefix("/orders/")
        if order_id != route and order_id and "/" not in order_id and request.method == "GET":
            return self._read(order_id)
        raise ApiError(404, f"Cannot {request.method} /plugins{route}")

    def _read(self, order_id: str) -> ApiResponse:
        try:
            order = self.backend.order(order_id)
        except UnknownOrderError:
            raise ApiError(404, "Order not found") from None
        return ApiResponse(200, order_json(order, self.backend.stores[order.store_id]))

    def _list(self, query: Mapping[str, str], api_key: str) -> ApiResponse:
        order_query = parse_list_query(query)
        caller = self.backend.store_for_key(api_key)
        if caller is None or caller.id != order_query.store_id:
            # Not documented: strict, a key sees the orders of its own store only.
            raise ApiError(403, "Forbidden")
        total, page = self.backend.query(order_query)
        body: dict[str, Any] = {}
        if _boolean(query, "withCount") or _boolean(query, "withTotal"):
            body["total"] = total
        body["orders"] = [list_json(order) for order in page]
        return ApiResponse(200, body)

    def _checkout(self, raw_body: bytes) -> ApiResponse:
        fields = _json_object(raw_body)
        missing = [name for name in _REQUIRED_FIELDS if fields.get(name) in (None, "")]
        if missing:
            raise ApiError(400, "Missing required fields: " + ", ".join(missing))
        for name in _REQUIRED_FIELDS[:-1]:
            if not isinstance(fields[name], str):
                raise ApiError(400, f"{name} must be a string")
        customer = fields["deliveryInfo"]
        if not isinstance(customer, dict):
            raise ApiError(400, "deliveryInfo must be an object")
        missing = [name for name in _REQUIRED_CUSTOMER_FIELDS if not customer.get(name)]
        if missing:
            names = ", ".join(f"deliveryInfo.{name}" for name in missing)
            raise ApiError(400, "Missing required fields: " + names)
        if fields["ecommerceType"] not in _ECOMMERCE_TYPES:
            raise ApiError(400, "ecommerceType must be one of: " + ", ".join(_ECOMMERCE_TYPES))
        _check_total(fields["orderTotal"])
        _check_url("callbackUrl", fields["callbackUrl"])
        status = fields.get("paymentStatus") or "pending"
        if status not in _CREATION_STATUSES:
            raise ApiError(400, "paymentStatus must be one of: " + ", ".join(_CREATION_STATUSES))
        if fields["store"] not in self.backend.stores:
            raise ApiError(400, "Store not found")
        order = self.backend.create_order(
            store_id=fields["store"],
            ecommerce_order_id=fields["ecommerceOrderId"],
            total=fields["orderTotal"],
            currency=fields["orderCurrency"],
            callback_url=fields["callbackUrl"],
            customer={str(key): str(value) for key, value in customer.items()},
            status=status,
            ecommerce_type=fields["ecommerceType"],
            cancel_return_url=_optional_string(fields, "cancelReturnUrl"),
            success_return_url=_optional_string(fields, "successReturnUrl"),
        )
        return ApiResponse(201, order_json(order, self.backend.stores[order.store_id]))


def parse_list_query(query: Mapping[str, str]) -> OrderQuery:
    """Validate the list parameters; raises `ApiError` (400) naming the bad one."""
    unknown = sorted(set(query) - _LIST_PARAMETERS)
    if unknown:
        raise ApiError(400, "Unknown query parameter: " + ", ".join(unknown))
    store_id = query.get("storeId")
    if not store_id:
        raise ApiError(400, "storeId is required")
    statuses = None
    if "paymentStatus" in query:
        # Documented as one enum value; a list of them is not a value of the enum.
        status = query["paymentStatus"]
        if status not in ORDER_STATUSES:
            raise ApiError(400, "paymentStatus must be one of: " + ", ".join(ORDER_STATUSES))
        statuses = frozenset({status})
    start_ms = _date_param(query, "startDate", end=False)
    end_ms = _date_param(query, "endDate", end=True)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ApiError(400, "startDate must not be after endDate")
    limit = _integer_param(query, "limit", default=MAX_LIMIT, low=1, high=MAX_LIMIT)
    offset = _integer_param(query, "offset", default=0, low=0, high=None)
    _boolean(query, "withCount")
    _boolean(query, "withTotal")
    return OrderQuery(store_id, statuses, start_ms, end_ms, limit, offset)


def _date_param(query: Mapping[str, str], name: str, *, end: bool) -> int | None:
    """Milliseconds since the epoch; a bare date is its first or, for an end, last millisecond."""
    text = query.get(name)
    if text is None:
        return None
    text = text.strip()
    try:
        if _DATE_ONLY.fullmatch(text):
            day = date.fromisoformat(text)
            start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000
            return start + _DAY_MS - 1 if end else start
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the API's clock is UTC
    return math.floor(moment.timestamp() * 1000)


def _integer_param(
    query: Mapping[str, str], name: str, *, default: int, low: int, high: int | None
) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not _DIGITS.fullmatch(text.strip()):
        raise ApiError(400, f"{name} must be a whole number")
    value = int(text)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"{name} must be {bounds}")
    return value


def _boolean(query: Mapping[str, str], name: str) -> bool:
    text = query.get(name)
    if text is None:
        return False
    try:
        return _BOOLEANS[text.strip().lower()]
    except KeyError:
        raise ApiError(400, f"{name} must be true or false") from None


def _json_object(raw_body: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(raw_body) if raw_body else None
    except ValueError:
        raise ApiError(400, "Invalid JSON body") from None
    if not isinstance(decoded, dict):
        raise ApiError(400, "The body must be a JSON object")
    return decoded


def _check_total(total: str) -> None:
    try:
        amount = Decimal(total)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0:
        raise ApiError(400, "orderTotal must be a positive decimal number")


def _check_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(400, f"{name} must be an http or https URL")


def _optional_string(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value
