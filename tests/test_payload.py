"""The callback model: `ecommerceOrderId` is a WooCommerce order id, or the callback is refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge.payload import InvalidPayload, is_woo_order_id, parse_callback

from support import callback_body, signed_headers

VALID_IDS = ["1", "2", "103", "9" * 19, "1000000000000000000"]
INVALID_IDS = [
    "0",
    "00",
    "-1",
    "+1",
    "01",
    "1.0",
    "1e3",
    "0x1F",
    " 2",
    "2 ",
    "2\n",
    "\t2",
    "1_000",
    "1,000",
    "../customers/1",
    "1/notes",
    "1?x=2",
    "abc",
    "",
    "1" * 20,
    "\u0663",  # ARABIC-INDIC DIGIT THREE: a digit to str.isdigit, not to WooCommerce
    "\uff12",  # FULLWIDTH DIGIT TWO
    "\u00b2",  # SUPERSCRIPT TWO
]
# Fixed, so it never carries what was sent.
REFUSED = (
    "ecommerceOrderId: must be a positive decimal integer of at most 19 digits "
    "(a WooCommerce order id)"
)
NOT_STRINGS: list[Any] = [2, 103, 0, -1, 1.0, 1e3, True, None, [], {}, ["2"]]


def body_with(order_id: Any) -> bytes:
    document = {"orderId": "o", "ecommerceOrderId": order_id, "storeId": "s", "status": "x"}
    return json.dumps(document).encode()


@pytest.mark.parametrize("order_id", VALID_IDS)
def test_a_positive_decimal_integer_is_accepted(order_id: str) -> None:
    assert is_woo_order_id(order_id)
    assert parse_callback(body_with(order_id)).ecommerce_order_id == order_id


@pytest.mark.parametrize("order_id", INVALID_IDS)
def test_anything_else_is_refused_naming_the_field_not_the_value(order_id: str) -> None:
    assert not is_woo_order_id(order_id)
    with pytest.raises(InvalidPayload) as refused:
        parse_callback(body_with(order_id))
    assert refused.value.detail == REFUSED


@pytest.mark.parametrize("value", NOT_STRINGS, ids=repr)
def test_a_json_number_or_other_type_is_refused_as_not_a_string(value: Any) -> None:
    with pytest.raises(InvalidPayload) as refused:
        parse_callback(body_with(value))
    assert refused.value.detail == "ecommerceOrderId: Input should be a valid string"


def test_a_wrong_order_id_is_named_beside_other_problems() -> None:
    body = json.dumps({"orderId": 5, "ecommerceOrderId": "01", "storeId": "s", "status": "x"})
    with pytest.raises(InvalidPayload) as refused:
        parse_callback(body.encode())
    assert refused.value.detail == "orderId: Input should be a valid string; " + REFUSED


@pytest.mark.parametrize("order_id", ["../customers/1", "0", "1e3", "2 ", "1" * 20])
async def test_the_endpoint_answers_400_naming_the_field_and_stores_nothing(
    client: Any, database_path: Path, order_id: str
) -> None:
    body = callback_body(order_id="cryptum-1", woo_order_id=order_id)
    response = await client.post("/callbacks/cryptum", data=body, headers=signed_headers(body))
    assert response.status == 400
    answer = await response.json()
    assert answer == {"error": "invalid_payload", "detail": REFUSED}
    with sqlite3.connect(database_path) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone() == (0,)
