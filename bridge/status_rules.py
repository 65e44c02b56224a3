"""What a Cryptum payment status does to a WooCommerce order: the contract's table, in code.

`decide` is pure: given the Cryptum status, the order as WooCommerce shows it
now and the store's rules, it returns one `Action`. Orders only move
forward: a paid order is never cancelled, failed or put back to pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Literal

__all__ = [
    "Action",
    "ActionKind",
    "OrderView",
    "StatusRules",
    "decide",
]

# WooCommerce statuses in which an order still waits for its payment.
AWAITING_PAYMENT = frozenset({"pending", "on-hold", "failed", "checkout-draft"})
PAID = frozenset({"processing", "completed"})
# Statuses from which WooCommerce's own payment completion runs (it checks
# `needs_payment()`, true only for these, and only with a positive total).
COMPLETION_STATUSES = frozenset({"pending", "failed"})


class ActionKind(StrEnum):
    PAY = "pay"  # mark paid, through payment completion where WooCommerce runs it
    SET_STATUS = "set_status"  # move the order to `target_status`
    NOTE_ONLY = "note_only"  # change nothing, but tell the shop in a note
    NOTHING = "nothing"  # change nothing, say nothing


@dataclass(frozen=True, slots=True)
class OrderView:
    """The part of a WooCommerce order the rules look at."""

    status: str
    total: str = "0"

    @property
    def total_is_positive(self) -> bool:
        try:
            return Decimal(self.total) > 0
        except InvalidOperation:
            return False


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    reason: str
    target_status: str | None = None
    # PAY only: whether WooCommerce's payment completion will run, or an
    # explicit status must be sent because it would skip completion.
    via_completion: bool = False

    @property
    def changes_order(self) -> bool:
        return self.kind in (ActionKind.PAY, ActionKind.SET_STATUS)

    @property
    def needs_note(self) -> bool:
        return self.kind is not ActionKind.NOTHING


@dataclass(frozen=True, slots=True)
class StatusRules:
    """A store's choices where the contract allows one; the defaults are the contract's table."""

    confirmed: Literal["pay", "ignore"] = "pay"
    on_hold: Literal["on-hold", "ignore"] = "on-hold"
    failed: Literal["failed", "cancelled", "ignore"] = "failed"
    cancelled: Literal["cancelled", "ignore"] = "cancelled"


def _nothing(reason: str) -> Action:
    return Action(ActionKind.NOTHING, reason)


def _pay(order: OrderView) -> Action:
    completion = order.status in COMPLETION_STATUSES and order.total_is_positive
    return Action(
        ActionKind.PAY,
        "payment confirmed",
        target_status="processing",
        via_completion=completion,
    )


def _confirmed(order: OrderView, rules: StatusRules) -> Action:
    if rules.confirmed == "ignore":
        return _nothing("confirmed payments are ignored for this store")
    if order.status in AWAITING_PAYMENT:
        return _pay(order)
    if order.status in PAID:
        return _nothing("already paid")
    if order.status == "cancelled":
        return Action(
            ActionKind.SET_STATUS,
            "paid after cancellation, review",
            target_status="on-hold",
        )
    if order.status == "refunded":
        return Action(ActionKind.NOTE_ONLY, "payment confirmed after a refund, review")
    return _nothing(f"order is {order.status}")


def _move_unpaid(
    order: OrderView, target: str, allowed_from: frozenset[str], configured: str
) -> Action:
    if configured == "ignore":
        return _nothing(f"{target} payments are ignored for this store")
    if order.status == configured:
        return _nothing(f"already {configured}")
    if order.status not in allowed_from:
        return _nothing(f"an order that is {order.status} does not move to {configured}")
    return Action(ActionKind.SET_STATUS, f"payment {target}", target_status=configured)


def decide(cryptum_status: str, order: OrderView, rules: StatusRules | None = None) -> Action:
    """The action for a payment now in `cryptum_status` on an order now in `order.status`."""
    rules = rules or StatusRules()
    if cryptum_status == "confirmed":
        return _confirmed(order, rules)
    if cryptum_status == "on-hold":
        return _move_unpaid(order, "on-hold", frozenset({"pending"}), rules.on_hold)
    if cryptum_status == "failed":
        return _move_unpaid(order, "failed", frozenset({"pending", "on-hold"}), rules.failed)
    if cryptum_status == "cancelled":
        allowed = frozenset({"pending", "on-hold", "failed"})
        return _move_unpaid(order, "cancelled", allowed, rules.cancelled)
    if cryptum_status == "pending":
        return _nothing("payment pending")
    return _nothing(f"unknown payment status {cryptum_status!r}")
