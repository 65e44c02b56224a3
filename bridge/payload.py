"""The Cryptum callback body as a typed model.

Only the fields the bridge acts on are checked; everything else Cryptum sends
is kept as it came, because unknown fields must be tolerated and stored.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

__all__ = ["CallbackPayload", "InvalidPayload", "Transaction", "parse_callback"]

NonEmptyStr = Annotated[StrictStr, Field(min_length=1, max_length=200)]


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

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    order_id: NonEmptyStr = Field(alias="orderId")
    ecommerce_order_id: NonEmptyStr = Field(alias="ecommerceOrderId")
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
