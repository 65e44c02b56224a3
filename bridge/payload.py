"""The Cryptum callback body as a typed model.

Only the fields the bridge acts on are checked; everything else Cryptum sends
is kept as it came, because unknown fields must be tolerated and stored.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationError
from pydantic_core import PydanticCustomError

__all__ = [
    "CallbackPayload",
    "InvalidPayload",
    "Transaction",
    "event_key",
    "is_woo_order_id",
    "parse_callback",
]

NonEmptyStr = Annotated[StrictStr, Field(min_length=1, max_length=200)]

# WooCommerce order ids are positive integers (a MySQL BIGINT UNSIGNED post id).
# Exactly the decimal digits, no sign, no leading zero: one spelling per order,
# and nothing a URL, a log line or a WooCommerce route could read otherwise.
_WOO_ORDER_ID = re.compile(r"[1-9][0-9]{0,18}")


def is_woo_order_id(value: str) -> bool:
    """True if `value` is a WooCommerce order id: a positive decimal integer, 1 to 19 digits."""
    # fullmatch, not `$`, which would also accept a trailing newline.
    return _WOO_ORDER_ID.fullmatch(value) is not None


def _check_woo_order_id(value: str) -> str:
    if not is_woo_order_id(value):
        # A fixed message: the detail never echoes what was sent.
        raise PydanticCustomError(
            "woo_order_id",
            "must be a positive decimal integer of at most 19 digits (a WooCommerce order id)",
        )
    return value


WooOrderId = Annotated[StrictStr, AfterValidator(_check_woo_order_id)]


class InvalidPayload(Exception):
    """The body is not a Cryptum callback; `detail` says what is wrong, without echoing values."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Transaction(BaseModel):
    """One on-chain transaction of the payment."""

    model_config = ConfigDict(extra="allow", frozen=True)

    protocol: StrictStr
    hash: StrictStr


class CallbackPayload(BaseModel):
    """A payment callback. Unknown fields are kept in `model_extra`."""

    # pydantic keeps the strings it reads from JSON in a process-wide cache
    # (16 384 of them) unless told otherwise. A callback's ids and hashes
    # never come again, so only its keys are worth keeping: the values held
    # 1.2 MiB of the daemon's memory under load and saved no time.
    model_config = ConfigDict(
        extra="allow", frozen=True, populate_by_name=True, cache_strings="keys"
    )

    order_id: NonEmptyStr = Field(alias="orderId")
    ecommerce_order_id: WooOrderId = Field(alias="ecommerceOrderId")
    store_id: NonEmptyStr = Field(alias="storeId")
    status: NonEmptyStr
    message: StrictStr | None = None
    transactions: list[Transaction] | None = None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        if item["type"] == "json_invalid":
            # The decoder's message names a position, never the content.
            return "body is not valid JSON: " + item["msg"].removeprefix("Invalid JSON: ")
        if item["type"] == "model_type" and not item["loc"]:
            return "body must be a JSON object"
        where = ".".join(str(part) for part in item["loc"])
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def parse_callback(body: bytes) -> CallbackPayload:
    """Decode and check a callback body, raising `InvalidPayload` with a short reason.

    Decoding and validation happen in one pass in pydantic's JSON parser,
    which also bounds nesting depth and refuses invalid UTF-8.
    """
    try:
        return CallbackPayload.model_validate_json(body)
    except ValidationError as error:
        raise InvalidPayload(_describe(error)) from None


def event_key(canonical_body: bytes) -> bytes:
    """What makes two events of one store, order and status the same: their canonical body.

    The one place the key is made: callbacks hash their body in the
    canonical JSON form (`signature.json_canonical`), so whitespace and key
    order do not make a resent callback new; reconciliation hashes the
    canonical form of what it found.
    """
    return hashlib.sha256(canonical_body).digest()
