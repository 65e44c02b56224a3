"""The WooCommerce REST resources the bridge reads, as typed models.

Only the fields the bridge uses are declared; the rest of WooCommerce's
answer is kept, so nothing is lost when an order is passed on.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["MetaEntry", "WooNote", "WooOrder"]


class MetaEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    key: str
    value: Any = None


class WooOrder(BaseModel):
    """The fields of a WooCommerce order the bridge reads; the rest is kept."""

    model_config = ConfigDict(extra="allow")

    id: int
    status: str
    total: str = "0"
    currency: str = ""
    payment_method: str = ""
    transaction_id: str = ""
    meta_data: list[MetaEntry] = []


class WooNote(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    note: str
