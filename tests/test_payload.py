"""The callback model: `ecommerceOrderId` is a WooCommerce order id, or the callback is refused."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.payload import (
    CallbackPayload,
    InvalidPayload,
    event_key,
    is_woo_order_id,
    parse_callback,
)

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


def test_the_order_id_check_has_its_own_error_type() -> None:
    document = {"orderId": "o", "ecommerceOrderId": "01", "storeId": "s", "status": "x"}
    with pytest.raises(ValidationError) as refused:
        CallbackPayload.model_validate(document)
    [problem] = refused.value.errors()
    assert (problem["type"], problem["loc"]) == ("woo_order_id", ("ecommerceOrderId",))


def test_the_detail_is_also_the_exceptions_message() -> None:
    with pytest.raises(InvalidPayload) as refused:
        parse_callback(body_with("01"))
    assert str(refused.value) == refused.value.detail == REFUSED


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"orderId": "o-secret-7",', b"\xff", b"{'orderId': 'o'}", b"nul"],
    ids=["empty", "open-brace", "cut-short", "not-utf8", "single-quotes", "bad-literal"],
)
def test_a_body_that_is_not_json_is_refused_naming_the_position(body: bytes) -> None:
    with pytest.raises(InvalidPayload) as refused:
        parse_callback(body)
    detail = refused.value.detail
    assert detail.startswith("body is not valid JSON: ")
    # The decoder's own prefix is not repeated; its position is kept; no content.
    assert "Invalid JSON" not in detail
    assert re.search(r" at line 1 column \d+$", detail)
    assert "secret" not in detail


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"2", b"null", b"true", b'[{"orderId": "o"}]'])
def test_a_json_value_that_is_not_an_object_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidPayload) as refused:
        parse_callback(body)
    assert refused.value.detail == "body must be a JSON object"


@pytest.mark.parametrize(
    ("transactions", "where"),
    [
        (["0xabc"], "transactions.0"),
        ([{"protocol": "CELO", "hash": "0x1"}, 7], "transactions.1"),
        ([{"protocol": "CELO"}], "transactions.0.hash"),
        ([{"protocol": 1, "hash": "0x1"}], "transactions.0.protocol"),
        ({"protocol": "CELO"}, "transactions"),
    ],
)
def test_a_problem_inside_the_body_is_named_by_its_path(transactions: Any, where: str) -> None:
    document = {
        "orderId": "o",
        "ecommerceOrderId": "2",
        "storeId": "s",
        "status": "x",
        "transactions": transactions,
    }
    with pytest.raises(InvalidPayload) as refused:
        parse_callback(json.dumps(document).encode())
    detail = refused.value.detail
    assert detail.startswith(f"{where}: ")
    assert ";" not in detail  # one problem, one line
    assert "0xabc" not in detail and "CELO" not in detail


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


def test_the_event_key_is_the_sha256_of_the_canonical_body() -> None:
    canonical = b'{"orderId":"c-1","status":"confirmed"}'
    assert event_key(canonical) == hashlib.sha256(canonical).digest()


def test_parsing_callbacks_keeps_none_of_their_values() -> None:
    # In a process of its own: pydantic's string cache is process-wide, and
    # other tests fill it. A callback's ids never come again, so none of
    # them may stay in memory once its model is gone.
    script = """
import json, tracemalloc
from bridge.payload import parse_callback
bodies = [
    json.dumps({"orderId": f"order-{n:032d}", "ecommerceOrderId": str(1000 + n),
                "storeId": "store-1", "status": "confirmed"}).encode()
    for n in range(2000)
]
parse_callback(bodies[0])
tracemalloc.start()
for body in bodies:
    parse_callback(body)
print(tracemalloc.get_traced_memory()[0])
"""
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    retained = int(finished.stdout)
    # Kept, the 2 000 order ids and 2 000 WooCommerce ids hold about 280 000 bytes.
    assert retained < 20_000, f"{retained} bytes still held after parsing"
