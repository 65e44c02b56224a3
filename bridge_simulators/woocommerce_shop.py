"""The state of a simulated WooCommerce shop and how its orders move; no HTTP here.

Simulated, as WooCommerce 11.0.1 (HPOS) behaved in `tests/fixtures/woocommerce/`:
- an order update applies plain fields and `meta_data` first (entries without
  an id update by key and keep their id), then the status with WooCommerce's
  transition hooks, then `set_paid`, which runs payment completion only while
  the order still needs payment (pending or failed, total above zero);
- stock is reduced when an order reaches processing, completed or on-hold and
  restored when it goes to cancelled or pending, each at most once, through the
  per-item `_reduced_stock` meta WooCommerce keeps;
- the notes WooCommerce writes itself: stock changes, status changes, payment,
  and one "Email ... sent." note per e-mail that is enabled by default;
- ids as a fresh WordPress install hands them out (see `_Ids`).

Not simulated: taxes, coupons, shipping, refunds, order creation through the
API, variations, backorders, stock e-mails, e-mails disabled by default, the
customer-note e-mail, and anything other plugins hook in. Notes and stock
changes for transitions that were not recorded follow WooCommerce's hooks as
read from its source, not a recording.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "ORDER_STATUSES",
    "STATUS_LABELS",
    "OrderUpdate",
    "Shop",
    "SimLineItem",
    "SimNote",
    "SimOrder",
    "SimProduct",
    "UnknownOrderError",
    "iso_datetime",
]

# In the order WooCommerce's schema lists them; its validation message repeats this order.
ORDER_STATUSES = (
    "auto-draft",
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "checkout-draft",
)

STATUS_LABELS = {
    "pending": "Pending payment",
    "processing": "Processing",
    "on-hold": "On hold",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "refunded": "Refunded",
    "failed": "Failed",
    "checkout-draft": "Draft",
}

# `wc_maybe_reduce_stock_levels` / `wc_maybe_increase_stock_levels` hook these statuses.
_REDUCES_STOCK = frozenset({"processing", "completed", "on-hold"})
_RESTORES_STOCK = frozenset({"cancelled", "pending"})
# WooCommerce's `woocommerce_valid_order_statuses_for_payment(_complete)`.
_NEEDS_PAYMENT = frozenset({"pending", "failed"})
_PAYMENT_COMPLETABLE = frozenset({"on-hold", "pending", "failed", "cancelled"})
_EDITABLE = frozenset({"pending", "on-hold", "auto-draft"})

# The e-mails WooCommerce sends by default on a status change, in the order it
# registers them: (title, from statuses, to statuses). "New order" goes once per order.
_TRANSITION_EMAILS: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = (
    (
        "New order",
        frozenset({"pending", "failed", "cancelled"}),
        frozenset({"processing", "completed", "on-hold"}),
    ),
    ("Cancelled order", frozenset({"processing", "on-hold"}), frozenset({"cancelled"})),
    ("Failed order", frozenset({"pending", "on-hold"}), frozenset({"failed"})),
    ("Order on-hold", frozenset({"pending", "failed", "cancelled"}), frozenset({"on-hold"})),
    (
        "Processing order",
        frozenset({"pending", "failed", "on-hold", "cancelled"}),
        frozenset({"processing"}),
    ),
)


def iso_datetime(timestamp: float) -> str:
    """WooCommerce's `2026-11-22T11:30:36`; the simulated site's timezone is UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))}"


class UnknownOrderError(LookupError):
    """No order has this id."""


@dataclass
class SimProduct:
    id: int
    name: str
    price: str = "10.00"
    stock: int | None = 100  # None: WooCommerce does not manage this product's stock
    sku: str = ""
    date_created: str = ""
    date_modified: str = ""


@dataclass
class SimLineItem:
    id: int
    product_id: int
    name: str
    sku: str
    quantity: int
    price: str
    # WooCommerce's `_reduced_stock` item meta: how much this line took from stock.
    reduced_stock: int | None = None
    reduced_stock_meta_id: int | None = None

    @property
    def total(self) -> str:
        return _money(Decimal(self.price) * self.quantity)


@dataclass
class SimNote:
    id: int
    order_id: int
    note: str
    date_created: str
    created_at: float
    customer_note: bool = False
    added_by: Literal["system", "api"] = "system"
    # The recording shows "WooCommerce" for WooCommerce's notes and for notes POSTed with a key.
    author: str = "WooCommerce"


@dataclass
class SimOrder:
    id: int
    status: str
    currency: str
    total: str
    payment_method: str
    payment_method_title: str
    transaction_id: str = ""
    date_created: str = ""
    date_modified: str = ""
    date_paid: str | None = None
    date_completed: str | None = None
    customer_note: str = ""
    order_key: str = ""
    meta_data: list[dict[str, Any]] = field(default_factory=list)
    line_items: list[SimLineItem] = field(default_factory=list)
    stock_reduced: bool = False
    virtual: bool = False
    new_order_email_sent: bool = False

    @property
    def needs_payment(self) -> bool:
        return self.status in _NEEDS_PAYMENT and Decimal(self.total) > 0

    @property
    def needs_processing(self) -> bool:
        # WooCommerce: false only when every item is virtual and downloadable.
        return not self.virtual

    @property
    def is_editable(self) -> bool:
        return self.status in _EDITABLE


@dataclass(frozen=True)
class OrderUpdate:
    """The fields of an order PUT the simulator applies; None means absent."""

    status: str | None = None
    set_paid: bool = False
    transaction_id: str | None = None
    customer_note: str | None = None
    payment_method: str | None = None
    payment_method_title: str | None = None
    meta_data: Sequence[dict[str, Any]] | None = None


class _Ids:
    """Auto-increment ids as a fresh WordPress + WooCommerce install hands them out.

    They reproduce the recording's numbers: comment 1 is WordPress's sample
    comment, so the first order note is 2; each new order takes two hidden meta
    rows and each line item nine hidden item-meta rows, so after the three seed
    orders the first meta row written through the API is 7 and the first
    `_reduced_stock` row is 28.
    """

    def __init__(self) -> None:
        self.note = 1
        self.line_item = 0
        self.order_meta = 0
        self.item_meta = 0

    def next_note(self) -> int:
        self.note += 1
        return self.note

    def next_line_item(self) -> int:
        self.line_item += 1
        self.item_meta += 9
        return self.line_item

    def reserve_order_rows(self) -> None:
        self.order_meta += 2

    def next_order_meta(self) -> int:
        self.order_meta += 1
        return self.order_meta

    def next_item_meta(self) -> int:
        self.item_meta += 1
        return self.item_meta


class Shop:
    """Products, orders and notes, changed the way WooCommerce changes them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.products: dict[int, SimProduct] = {}
        self.orders: dict[int, SimOrder] = {}
        self._notes: dict[int, list[SimNote]] = {}
        self._ids = _Ids()

    def _now(self) -> str:
        return iso_datetime(self.clock())

    # Seeding -------------------------------------------------------------------

    def add_product(
        self,
        product_id: int,
        name: str,
        *,
        stock: int | None = 100,
        price: str = "10.00",
        sku: str = "",
    ) -> SimProduct:
        if product_id in self.products:
            raise ValueError(f"product {product_id} already exists")
        now = self._now()
        product = SimProduct(
            product_id, name, price=price, stock=stock, sku=sku, date_created=now, date_modified=now
        )
        self.products[product_id] = product
        return product

    def add_order(
        self,
        order_id: int,
        *,
        status: str = "pending",
        items: Iterable[tuple[int, int]] = ((10, 1),),
        total: str | None = None,
        currency: str = "USD",
        payment_method: str = "cryptumcheckout_gateway",
        payment_method_title: str = "Cryptum Checkout",
        virtual: bool = False,
    ) -> SimOrder:
        """An order as checkout leaves it; `status` is set as is, with no transition effects."""
        if order_id in self.orders:
            raise ValueError(f"order {order_id} already exists")
        if status not in ORDER_STATUSES:
            raise ValueError(f"unknown order status {status!r}")
        line_items = []
        for product_id, quantity in items:
            product = self.products.get(product_id)
            if product is None:
                raise ValueError(f"order {order_id} refers to unknown product {product_id}")
            line_items.append(
                SimLineItem(
                    self._ids.next_line_item(),
                    product_id,
                    product.name,
                    product.sku,
                    quantity,
                    product.price,
                )
            )
        if total is None:
            total = _money(sum((Decimal(item.total) for item in line_items), Decimal(0)))
        self._ids.reserve_order_rows()
        now = self._now()
        alphabet = string.ascii_letters + string.digits
        order = SimOrder(
            order_id,
            status,
            currency,
            total,
            payment_method,
            payment_method_title,
            date_created=now,
            date_modified=now,
            order_key="wc_order_" + "".join(secrets.choice(alphabet) for _ in range(13)),
            line_items=line_items,
            virtual=virtual,
        )
        self.orders[order_id] = order
        self._notes[order_id] = []
        return order

    # Reading -------------------------------------------------------------------

    def order(self, order_id: int) -> SimOrder:
        try:
            return self.orders[order_id]
        except KeyError:
            raise UnknownOrderError(order_id) from None

    def notes(self, order_id: int) -> list[SimNote]:
        """Oldest first."""
        self.order(order_id)
        return list(self._notes[order_id])

    # Changing ------------------------------------------------------------------

    def add_note(
        self,
        order_id: int,
        text: str,
        *,
        customer_note: bool = False,
        added_by: Literal["system", "api"] = "api",
    ) -> SimNote:
        """A new note every time: WooCommerce never de-duplicates notes (fixture 06)."""
        self.order(order_id)
        created_at = self.clock()
        note = SimNote(
            self._ids.next_note(),
            order_id,
            text,
            iso_datetime(created_at),
            created_at,
            customer_note=customer_note,
            added_by=added_by,
        )
        self._notes[order_id].append(note)
        return note

    def update_order(self, order_id: int, update: OrderUpdate) -> SimOrder:
        """An order PUT in the order WooCommerce's v3 controller applies it."""
        order = self.order(order_id)
        if update.transaction_id is not None:
            order.transaction_id = update.transaction_id
        if update.customer_note is not None:
            order.customer_note = update.customer_note
        if update.payment_method is not None:
            order.payment_method = update.payment_method
        if update.payment_method_title is not None:
            order.payment_method_title = update.payment_method_title
        for entry in update.meta_data or ():
            self._update_meta(order, entry["key"], entry.get("value"), entry.get("id"))
        self._save_meta(order)
        # Every save moves date_modified, even when nothing else changed (fixture 04).
        order.date_modified = self._now()
        if update.status:
            self._change_status(order, update.status)
        # With a status given the order usually no longer needs payment, so set_paid
        # does nothing and WooCommerce's payment completion never runs (fixture 03).
        if update.set_paid and order.needs_payment:
            self.payment_complete(order, update.transaction_id or "")
        return order

    def payment_complete(self, order: SimOrder, transaction_id: str = "") -> bool:
        """`WC_Order::payment_complete`: processing (completed if virtual), paid, stock reduced."""
        if order.status not in _PAYMENT_COMPLETABLE:
            return False
        if transaction_id:
            order.transaction_id = transaction_id
        if order.date_paid is None:
            order.date_paid = self._now()
        title = order.payment_method_title or order.payment_method
        # This note stands in for the status-change note (fixture 12 has no such note).
        if title and transaction_id:
            self._system_note(order, f"Payment via {title} ({transaction_id}).")
        else:
            self._system_note(order, "Payment complete.")
        target = "processing" if order.needs_processing else "completed"
        self._change_status(order, target, transition_note=False)
        self._reduce_stock(order)  # the `woocommerce_payment_complete` hook; no-op if done
        return True

    # WooCommerce internals -------------------------------------------------------

    def _system_note(self, order: SimOrder, text: str) -> None:
        self.add_note(order.id, text, added_by="system")

    def _change_status(self, order: SimOrder, new: str, *, transition_note: bool = True) -> None:
        old = order.status
        if new == old:
            return
        order.status = new
        now = self._now()
        paid_status = "processing" if order.needs_processing else "completed"
        if order.date_paid is None and (
            new == paid_status or (paid_status == "processing" and new == "completed")
        ):
            order.date_paid = now
        if new == "completed":
            order.date_completed = now
        # Hooks on `woocommerce_order_status_{new}` run before the transition note.
        if new in _REDUCES_STOCK:
            self._reduce_stock(order)
        elif new in _RESTORES_STOCK:
            self._restore_stock(order)
        if new == "completed":
            self._system_note(order, 'Email "Completed order" sent.')
        if transition_note:
            self._system_note(
                order,
                f"Order status changed from {_label(old)} to {_label(new)}.",
            )
        for title, sources, targets in _TRANSITION_EMAILS:
            if old not in sources or new not in targets:
                continue
            if title == "New order":
                if order.new_order_email_sent:
                    continue
                order.new_order_email_sent = True
            self._system_note(order, f'Email "{title}" sent.')

    def _reduce_stock(self, order: SimOrder) -> None:
        if order.stock_reduced:
            return
        changes = []
        for item in order.line_items:
            product = self.products.get(item.product_id)
            if item.reduced_stock or product is None or product.stock is None:
                continue
            before = product.stock
            product.stock -= item.quantity
            product.date_modified = self._now()
            item.reduced_stock = item.quantity
            item.reduced_stock_meta_id = self._ids.next_item_meta()
            changes.append(f"{product.name} ({before}&rarr;{product.stock})")
        if changes:
            self._system_note(order, "Stock levels reduced: " + ", ".join(changes))
        order.stock_reduced = True

    def _restore_stock(self, order: SimOrder) -> None:
        if not order.stock_reduced:
            return
        changes = []
        for item in order.line_items:
            product = self.products.get(item.product_id)
            if not item.reduced_stock or product is None or product.stock is None:
                continue
            before = product.stock
            product.stock += item.reduced_stock
            product.date_modified = self._now()
            item.reduced_stock = None
            item.reduced_stock_meta_id = None
            changes.append(f"{product.name} ({before}&rarr;{product.stock})")
        if changes:
            self._system_note(order, "Stock levels increased: " + ", ".join(changes))
        order.stock_reduced = False

    @staticmethod
    def _update_meta(order: SimOrder, key: str, value: Any, meta_id: int | None) -> None:
        """`WC_Data::update_meta_data`: by id if given, else the first entry with this key."""
        target = None
        if meta_id:
            target = next((entry for entry in order.meta_data if entry["id"] == meta_id), None)
        else:
            matches = [entry for entry in order.meta_data if entry["key"] == key]
            for entry in matches:
                entry["value"] = None  # duplicates of the key are deleted on save
            target = matches[0] if matches else None
        if target is not None:
            target["key"] = key
            target["value"] = value
            return
        order.meta_data = [entry for entry in order.meta_data if entry["key"] != key]
        order.meta_data.append({"id": None, "key": key, "value": value})

    def _save_meta(self, order: SimOrder) -> None:
        # WordPress deletes meta whose value became null and numbers new rows on save.
        order.meta_data = [entry for entry in order.meta_data if entry["value"] is not None]
        for entry in order.meta_data:
            if entry["id"] is None:
                entry["id"] = self._ids.next_order_meta()


def _label(status: str) -> str:
    """`wc_get_order_status_name`: the label, or the slug for statuses without one."""
    return STATUS_LABELS.get(status, status)
