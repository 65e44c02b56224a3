"""The JSON WooCommerce's REST API v3 answers for orders, notes and products.

Orders and notes have every field of the recorded bodies (fixtures 01, 05,
07), in the same order; fields the simulator keeps no state for (addresses,
taxes, shipping) carry the values of the recorded seed orders. Products carry
the stock, price and identity fields of fixture 02, not its catalogue fields.
"""

from __future__ import annotations

from typing import Any

from bridge_simulators.woocommerce_shop import SimLineItem, SimNote, SimOrder, SimProduct

__all__ = ["note_json", "order_json", "product_json"]

_ITEM_ALLOW = ["GET", "POST", "PUT", "PATCH", "DELETE"]

_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "&euro;", "GBP": "&pound;", "BRL": "&#082;&#036;"}

_ADDRESS = {
    "first_name": "Alice",
    "last_name": "Tester",
    "company": "",
    "address_1": "1 Test Street",
    "address_2": "",
    "city": "San Francisco",
    "state": "CA",
    "postcode": "94103",
    "country": "US",
}


def _number(amount: str) -> int | float:
    """PHP's JSON for a float: `10` rather than `10.0` when it is whole."""
    value = float(amount)
    return int(value) if value.is_integer() else value


def _line_item_json(item: SimLineItem) -> dict[str, Any]:
    meta: list[dict[str, Any]] = []
    if item.reduced_stock is not None:
        quantity = str(item.reduced_stock)
        meta.append(
            {
                "id": item.reduced_stock_meta_id,
                "key": "_reduced_stock",
                "value": quantity,
                "display_key": "_reduced_stock",
                "display_value": quantity,
            }
        )
    return {
        "id": item.id,
        "name": item.name,
        "product_id": item.product_id,
        "variation_id": 0,
        "quantity": item.quantity,
        "tax_class": "",
        "subtotal": item.total,
        "subtotal_tax": "0.00",
        "total": item.total,
        "total_tax": "0.00",
        "taxes": [],
        "meta_data": meta,
        "sku": item.sku,
        "global_unique_id": "",
        "price": _number(item.price),
        "image": {"id": "", "src": ""},
        "parent_name": None,
    }


def order_json(order: SimOrder, home: str) -> dict[str, Any]:
    api = f"{home}/wp-json/wc/v3"
    return {
        "id": order.id,
        "parent_id": 0,
        "status": order.status,
        "currency": order.currency,
        "version": "11.0.1",
        "prices_include_tax": False,
        "date_created": order.date_created,
        "date_modified": order.date_modified,
        "discount_total": "0.00",
        "discount_tax": "0.00",
        "shipping_total": "0.00",
        "shipping_tax": "0.00",
        "cart_tax": "0.00",
        "total": order.total,
        "total_tax": "0.00",
        "customer_id": 0,
        "order_key": order.order_key,
        "billing": {**_ADDRESS, "email": "alice@example.test", "phone": "555-0100"},
        "shipping": {**_ADDRESS, "phone": "555-0100"},
        "payment_method": order.payment_method,
        "payment_method_title": order.payment_method_title,
        "transaction_id": order.transaction_id,
        "customer_ip_address": "127.0.0.1",
        "customer_user_agent": "",
        "created_via": "checkout",
        "customer_note": order.customer_note,
        "date_completed": order.date_completed,
        "date_paid": order.date_paid,
        "cart_hash": "",
        "number": str(order.id),
        "meta_data": [dict(entry) for entry in order.meta_data],
        "line_items": [_line_item_json(item) for item in order.line_items],
        "tax_lines": [],
        "shipping_lines": [],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": [],
        "payment_url": (
            f"{home}/checkout/order-pay/{order.id}/?pay_for_order=true&key={order.order_key}"
        ),
        "is_editable": order.is_editable,
        "needs_payment": order.needs_payment,
        "needs_processing": order.needs_processing,
        "date_created_gmt": order.date_created,
        "date_modified_gmt": order.date_modified,
        "date_completed_gmt": order.date_completed,
        "date_paid_gmt": order.date_paid,
        "currency_symbol": _CURRENCY_SYMBOLS.get(order.currency, order.currency),
        "_links": {
            "self": [{"href": f"{api}/orders/{order.id}", "targetHints": {"allow": _ITEM_ALLOW}}],
            "collection": [{"href": f"{api}/orders"}],
            "email_templates": [
                {"embeddable": True, "href": f"{api}/orders/{order.id}/actions/email_templates"}
            ],
        },
    }


def note_json(note: SimNote, home: str) -> dict[str, Any]:
    order_url = f"{home}/wp-json/wc/v3/orders/{note.order_id}"
    return {
        "id": note.id,
        "author": note.author,
        "date_created": note.date_created,
        "date_created_gmt": note.date_created,
        "note": note.note,
        "customer_note": note.customer_note,
        "_links": {
            "self": [
                {
                    "href": f"{order_url}/notes/{note.id}",
                    "targetHints": {"allow": ["GET", "DELETE"]},
                }
            ],
            "collection": [{"href": f"{order_url}/notes"}],
            "up": [{"href": order_url}],
        },
    }


def product_json(product: SimProduct, home: str) -> dict[str, Any]:
    api = f"{home}/wp-json/wc/v3"
    slug = "-".join(product.name.lower().split())
    in_stock = product.stock is None or product.stock > 0
    symbol = "&#36;"
    return {
        "id": product.id,
        "name": product.name,
        "slug": slug,
        "permalink": f"{home}/product/{slug}/",
        "date_created": product.date_created,
        "date_created_gmt": product.date_created,
        "date_modified": product.date_modified,
        "date_modified_gmt": product.date_modified,
        "type": "simple",
        "status": "publish",
        "featured": False,
        "catalog_visibility": "visible",
        "description": "",
        "short_description": "",
        "sku": product.sku,
        "price": product.price,
        "regular_price": product.price,
        "sale_price": "",
        "on_sale": False,
        "purchasable": True,
        "total_sales": 0,
        "virtual": False,
        "downloadable": False,
        "tax_status": "taxable",
        "tax_class": "",
        "manage_stock": product.stock is not None,
        "stock_quantity": product.stock,
        "backorders": "no",
        "backorders_allowed": False,
        "backordered": False,
        "low_stock_amount": None,
        "price_html": (
            '<span class="woocommerce-Price-amount amount"><bdi>'
            '<span class="woocommerce-Price-currencySymbol" translate="no">'
            f"{symbol}</span>{product.price}</bdi></span>"
        ),
        "meta_data": [],
        "stock_status": "instock" if in_stock else "outofstock",
        "_links": {
            "self": [
                {"href": f"{api}/products/{product.id}", "targetHints": {"allow": _ITEM_ALLOW}}
            ],
            "collection": [{"href": f"{api}/products"}],
        },
    }
