"""The WooCommerce REST v3 routes of the simulator, dispatched as WordPress does; no aiohttp.

A request arrives here already authenticated (or anonymous). Then, in
WordPress's order: route match (`rest_no_route`), JSON body, argument
validation (before permissions, fixture 23), the permission callback (an
anonymous caller gets 401 `woocommerce_rest_cannot_*`) and the handler.

Routes: GET, PUT (and POST, PATCH) `/wc/v3/orders/{id}`; GET `/wc/v3/orders`
with WordPress pagination; GET, POST `/wc/v3/orders/{id}/notes`; GET
`/wc/v3/orders/{id}/notes/{note_id}`; GET `/wc/v3/products/{id}`. Not
simulated: DELETE, creating orders, any other resource (all `rest_no_route`),
and most list filters (only `status`, `order`, `orderby`, `page`, `per_page`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bridge_simulators.woocommerce_auth import ApiKey
from bridge_simulators.woocommerce_errors import RestError, invalid_json, no_route
from bridge_simulators.woocommerce_json import note_json, order_json, product_json
from bridge_simulators.woocommerce_params import Arg, validate
from bridge_simulators.woocommerce_shop import ORDER_STATUSES, OrderUpdate, Shop, SimNote

__all__ = ["RestApi", "RestRequest", "RestResponse"]


@dataclass(frozen=True)
class RestRequest:
    method: str
    route: str  # the REST route, e.g. `/wc/v3/orders/11`
    query: Sequence[tuple[str, str]]  # every query parameter as sent; pagination links repeat them
    params: Mapping[str, Any]  # query, form and JSON body merged, the body winning
    key: ApiKey | None = None  # None: anonymous
    json_error: str | None = None  # why the JSON body did not parse


@dataclass
class RestResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


_Ids = dict[str, int]
_Handler = Callable[[_Ids, dict[str, Any], RestRequest, str], RestResponse]
# Given the caller's key (None when anonymous) and the route's ids; raises when refused.
_Permission = Callable[[ApiKey | None, _Ids], None]


@dataclass(frozen=True)
class _Endpoint:
    handler: _Handler
    permission: _Permission
    args: Mapping[str, Arg] = field(default_factory=dict)


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    allow: str  # WordPress's Allow header for an authenticated caller
    endpoints: Mapping[str, _Endpoint]


_ITEM_ALLOW = "GET, POST, PUT, PATCH, DELETE"
_COLLECTION_ALLOW = "GET, POST"
_EDIT_ARGS = {
    "status": Arg("string", enum=ORDER_STATUSES),
    "set_paid": Arg("boolean", default=False),
    "transaction_id": Arg("string"),
    "customer_note": Arg("string"),
    "payment_method": Arg("string"),
    "payment_method_title": Arg("string"),
    "meta_data": Arg("meta_data"),
}
_LIST_ARGS = {
    "page": Arg("integer", minimum=1, default=1),
    "per_page": Arg("integer", minimum=1, maximum=100, default=10),
    "order": Arg("string", enum=("asc", "desc"), default="desc"),
    "orderby": Arg(
        "string", enum=("date", "id", "include", "title", "slug", "modified"), default="date"
    ),
}
_NOTES_LIST_ARGS = {"type": Arg("string", enum=("any", "customer", "internal"), default="any")}
_NOTE_CREATE_ARGS = {
    "note": Arg("string", required=True),
    "customer_note": Arg("boolean", default=False),
    "added_by_user": Arg("boolean", default=False),
}


def _refuse(code: str, message: str) -> RestError:
    # `rest_authorization_required_code()`: 401 for a caller who is not logged in.
    return RestError(401, code, message)


class RestApi:
    """Dispatches `RestRequest`s to the shop."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        order_item = r"/wc/v3/orders/(?P<id>\d+)"
        edit = _Endpoint(self._update_order, self._may_edit_order, _EDIT_ARGS)
        self._routes = (
            _Route(
                re.compile(order_item),
                _ITEM_ALLOW,
                {
                    "GET": _Endpoint(self._get_order, self._may_view_order),
                    "PUT": edit,
                    "POST": edit,
                    "PATCH": edit,
                },
            ),
            _Route(
                re.compile(r"/wc/v3/orders"),
                _COLLECTION_ALLOW,
                {"GET": _Endpoint(self._list_orders, _may_list, _LIST_ARGS)},
            ),
            _Route(
                re.compile(order_item + r"/notes"),
                _COLLECTION_ALLOW,
                {
                    "GET": _Endpoint(self._list_notes, _may_list, _NOTES_LIST_ARGS),
                    "POST": _Endpoint(self._create_note, _may_create, _NOTE_CREATE_ARGS),
                },
            ),
            _Route(
                re.compile(r"/wc/v3/orders/(?P<order_id>\d+)/notes/(?P<id>\d+)"),
                "GET, DELETE",
                {"GET": _Endpoint(self._get_note, self._may_view_note)},
            ),
            _Route(
                re.compile(r"/wc/v3/products/(?P<id>\d+)"),
                _ITEM_ALLOW,
                {"GET": _Endpoint(self._get_product, self._may_view_product)},
            ),
        )

    def dispatch(self, request: RestRequest, home: str) -> RestResponse:
        """Answer a request; `home` is the site's home URL for links in the answer."""
        method = "GET" if request.method == "HEAD" else request.method
        for route in self._routes:
            match = route.pattern.fullmatch(request.route.rstrip("/") or "/")
            if match is not None:
                break
        else:
            raise no_route()
        endpoint = route.endpoints.get(method)
        if endpoint is None:
            raise no_route()
        ids = {name: int(value) for name, value in match.groupdict().items()}
        # WordPress lists only the methods whose permission callback passes: none when anonymous.
        allow = {"Allow": route.allow} if request.key is not None else {}
        try:
            if request.json_error is not None:
                raise invalid_json(request.json_error)
            args = validate(endpoint.args, request.params)
            endpoint.permission(request.key, ids)
            response = endpoint.handler(ids, args, request, home)
        except RestError as error:
            return RestResponse(error.status, error.body(), allow)
        response.headers.update(allow)
        return response

    # Permission callbacks --------------------------------------------------------
    # WooCommerce's item checks refuse only when the object exists: an anonymous
    # caller asking for a missing order gets its 404/400, not a 401.

    def _may_view_order(self, key: ApiKey | None, ids: _Ids) -> None:
        if key is None and ids["id"] in self.shop.orders:
            raise _refuse("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")

    def _may_edit_order(self, key: ApiKey | None, ids: _Ids) -> None:
        if key is None and ids["id"] in self.shop.orders:
            raise _refuse(
                "woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."
            )

    def _may_view_note(self, key: ApiKey | None, ids: _Ids) -> None:
        if key is None and ids["order_id"] in self.shop.orders:
            raise _refuse("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")

    def _may_view_product(self, key: ApiKey | None, ids: _Ids) -> None:
        if key is None and ids["id"] in self.shop.products:
            raise _refuse("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")

    # Handlers --------------------------------------------------------------------

    def _get_order(
        self, ids: _Ids, args: dict[str, Any], request: RestRequest, home: str
    ) -> RestResponse:
        order = self.shop.orders.get(ids["id"])
        if order is None:
            raise RestError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return RestResponse(200, order_json(order, home))

    def _update_order(
        self, ids: _Ids, args: dict[str, Any], request: RestRequest, home: str
    ) -> RestResponse:
        if ids["id"] not in self.shop.orders:
            # Unlike GET, a PUT on a missing order is 400 with its own message (fixture 15).
            raise RestError(400, "woocommerce_rest_shop_order_invalid_id", "ID is invalid.")
        meta = [
            {"key": entry["key"], "value": entry.get("value"), "id": _meta_id(entry)}
            for entry in args["meta_data"] or ()
            if "key" in entry
        ]
        update = OrderUpdate(
            status=args["status"],
            set_paid=args["set_paid"],
            transaction_id=args["transaction_id"],
            customer_note=args["customer_note"],
            payment_method=args["payment_method"],
            payment_method_title=args["payment_method_title"],
            meta_data=meta if args["meta_data"] is not None else None,
        )
        order = self.shop.update_order(ids["id"], update)
        return RestResponse(200, order_json(order, home))

    def _list_orders(
        self, ids: _Ids, args: dict[str, Any], request: RestRequest, home: str
    ) -> RestResponse:
        statuses = _status_filter(request.params.get("status"))
        orders = [o for o in self.shop.orders.values() if not statuses or o.status in statuses]
        field_name = {"date": "date_created", "modified": "date_modified"}.get(args["orderby"])
        orders.sort(
            key=lambda order: (getattr(order, field_name) if field_name else "", order.id),
            reverse=args["order"] == "desc",
        )
        page, per_page = args["page"], args["per_page"]
        pages = math.ceil(len(orders) / per_page)
        chosen = orders[(page - 1) * per_page : page * per_page]
        headers = {"X-WP-Total": str(len(orders)), "X-WP-TotalPages": str(pages)}
        links = []
        base = f"{home}/wp-json/wc/v3/orders"
        if page > 1:
            links.append(f'<{base}?{_with_page(request.query, min(page - 1, pages))}>; rel="prev"')
        if pages > page:
            links.append(f'<{base}?{_with_page(request.query, page + 1)}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return RestResponse(200, [order_json(order, home) for order in chosen], headers)

    def _list_notes(
        self, ids: _Ids, args: dict[str, Any], request: RestRequest, home: str
    ) -> RestResponse:
        if ids["id"] not in self.shop.orders:
            raise RestError(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
        notes = [
            note
            for note in self.shop.notes(ids["id"])
            if args["type"] == "any" or note.customer_note == (args["type"] == "customer")
        ]
        return RestResponse(200, [note_json(note, home) for note in _newest_first(notes)])

    def _create_note(
        self, ids: _Ids, args: dict[str, Any], request: RestRequest, home: str
    ) -> RestResponse:
        if ids["id"] not in self.shop.orders:
            raise RestError(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
        note = self.shop.add_note(ids["id"], args["note"], customer_note=args["customer_note"])
        location = f"{home}/wp-json/wc/v3/orders/{ids['id']}/notes/{note.id}"
        return RestResponse(201, note_json(note, home), {"Location": location})

    def _get_note(
        self, ids: _Ids, args: dict[str, Any], request: RestRequest, home: str
    ) -> RestResponse:
        if ids["order_id"] not in self.shop.orders:
            raise RestError(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
        for note in self.shop.notes(ids["order_id"]):
            if note.id == ids["id"]:
                return RestResponse(200, note_json(note, home))
        raise RestError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")

    def _get_product(
        self, ids: _Ids, args: dict[str, Any], request: RestRequest, home: str
    ) -> RestResponse:
        product = self.shop.products.get(ids["id"])
        if product is None:
            raise RestError(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        return RestResponse(200, product_json(product, home))


def _may_list(key: ApiKey | None, ids: _Ids) -> None:
    if key is None:
        raise _refuse("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")


def _may_create(key: ApiKey | None, ids: _Ids) -> None:
    if key is None:
        raise _refuse(
            "woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."
        )


def _meta_id(entry: Mapping[str, Any]) -> int | None:
    value = entry.get("id")
    return int(value) if value not in (None, "", 0, "0") else None


def _status_filter(value: Any) -> set[str]:
    """`status=processing,on-hold` or a list; `any` (the default) means every status."""
    if value is None:
        return set()
    names = value if isinstance(value, list) else str(value).split(",")
    statuses = {str(name).strip() for name in names}
    return set() if "any" in statuses else statuses


def _newest_first(notes: list[SimNote]) -> list[SimNote]:
    """WooCommerce's order: newest second first, and oldest id first within a second.

    That is what the recording shows (fixture 07: notes 6, 7, then 2, 3, 4, 5).
    """
    return sorted(notes, key=lambda note: (-int(note.created_at), note.id))


def _with_page(query: Sequence[tuple[str, str]], page: int) -> str:
    """The request's own query with `page` replaced or appended (WordPress's `add_query_arg`)."""
    pairs = [(name, str(page) if name == "page" else value) for name, value in query]
    if not any(name == "page" for name, _ in query):
        pairs.append(("page", str(page)))
    return urlencode(pairs)
