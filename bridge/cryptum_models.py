"""Cryptum's orders as the bridge reads them from the API: one order, and a page of the list."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .payload import Transaction

__all__ = ["CryptumOrder", "ListedOrder", "OrderPage", "StoreRef"]


class StoreRef(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str


class _OrderFields(BaseModel):
    """What a read order and a listed one have in common."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1)
    ecommerce_order_id: str = Field(alias="ecommerceOrderId")
    store: StoreRef | None = None

    @field_validator("ecommerce_order_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("store", mode="before")
    @classmethod
    def _store_reference(cls, value: Any) -> Any:
        # A single order names its store as an object, a listed order by its id alone.
        return {"id": value} if isinstance(value, str) else value

    @property
    def store_id(self) -> str | None:
        return self.store.id if self.store is not None else None


class CryptumOrder(_OrderFields):
    """The fields of a Cryptum order the bridge acts on; the rest (customer data) is ignored."""

    payment_status: str = Field(alias="paymentStatus")
    order_total: str | None = Field(default=None, alias="orderTotal")
    order_currency: str | None = Field(default=None, alias="orderCurrency")
    transactions: list[Transaction] | None = None

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


class ListedOrder(_OrderFields):
    """An entry of the order list.

    The documented entry carries no `paymentStatus`: its status is the one the
    list was asked for. Where the API does send one, it is kept, so that an
    entry whose status moved between the query and the answer can be told.
    """

    payment_status: str | None = Field(default=None, alias="paymentStatus")


class OrderPage(BaseModel):
    total: int | None = Field(default=None, ge=0)
    orders: list[ListedOrder]
