"""What to send WooCommerce for one delivery: checks, the status rule, the PUT body, the note.

Pure functions over plain data. A `Plan` is stored with the delivery before
its update is sent, so a retry after an uncertain attempt can tell whether
the update already landed (`is_applied`) instead of deciding again on an
order the bridge itself just changed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from .status_rules import PAID, ActionKind, OrderView, StatusRules, decide
from .woocommerce_models import WooOrder

__all__ = [
    "PaymentFacts",
    "Plan",
    "is_applied",
    "note_marker",
    "plan_delivery",
]

# Order meta the reference plugin writes, so existing admin screens keep working.
META_TRANSACTIONS = "_cryptum_checkout_order_transactions"
META_MESSAGE = "_cryptum_checkout_order_transactions_message"
META_ORDER_ID = "_cryptum_order_id"


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """What the bridge knows about the payment (from the callback, later from Cryptum's API)."""

    status: str
    cryptum_order_id: str
    transactions: tuple[tuple[str, str], ...] = ()  # (protocol, hash)
    message: str | None = None
    expected_total: str | None = None
    expected_currency: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    kind: str
    reason: str
    target_status: str | None
    changes: dict[str, Any] | None  # the PUT body, None when the order is left as it is
    note: str | None  # None when nothing is worth telling the shop
    transaction_id: str | None = None
    # Set when the delivery must end on the dead-letter list once the plan is
    # carried out, so that an admin looks at it: the reason why.
    give_up: str | None = None
    # The Cryptum payment status the plan acts on (None in plans saved before
    # it was recorded: then the event's status).
    payment_status: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The plan as saved with its delivery, without the order meta it writes.

        The meta carries the callback's free-text `message`, which may hold
        customer data; a resumed plan needs only what tells whether its
        update landed and the note, so the meta is not stored at all.
        """
        saved = asdict(self)
        if saved["changes"] is not None:
            saved["changes"] = {
                key: value for key, value in saved["changes"].items() if key != "meta_data"
            }
        return saved

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(**data)


def note_marker(delivery_id: int, generation: int) -> str:
    """The tag that identifies the bridge's note for one run of one delivery."""
    return f"[cryptum-bridge delivery {delivery_id}.{generation}]"


def _amount_problem(order: WooOrder, payment: PaymentFacts) -> str | None:
    if payment.expected_currency and order.currency.upper() != payment.expected_currency.upper():
        return (
            f"currency mismatch: the order is in {order.currency}, "
            f"the Cryptum payment in {payment.expected_currency}"
        )
    if payment.expected_total is None:
        return None
    try:
        equal = Decimal(order.total) == Decimal(payment.expected_total)
    except InvalidOperation:
        equal = False
    if not equal:
        return (
            f"amount mismatch: the order total is {order.total}, "
            f"the Cryptum order's is {payment.expected_total}"
        )
    return None


def _payment_meta(payment: PaymentFacts) -> list[dict[str, str]]:
    transactions = [
        {"protocol": protocol, "hash": tx_hash} for protocol, tx_hash in payment.transactions
    ]
    meta = [
        {"key": META_TRANSACTIONS, "value": json.dumps(transactions, separators=(",", ":"))},
        {"key": META_ORDER_ID, "value": payment.cryptum_order_id},
    ]
    if payment.message is not None:
        meta.append({"key": META_MESSAGE, "value": payment.message})
    return meta


def _describe_payment(payment: PaymentFacts) -> str:
    parts = [f"{protocol} transaction {tx_hash}" for protocol, tx_hash in payment.transactions]
    parts.append(f"Cryptum order {payment.cryptum_order_id}")
    return ", ".join(parts)


def plan_delivery(
    payment: PaymentFacts,
    order: WooOrder,
    *,
    gateway: str,
    rules: StatusRules,
    marker: str,
) -> Plan:
    """Decide what to do with `order` now; the plan records which status it acts on."""
    return replace(
        _plan(payment, order, gateway=gateway, rules=rules, marker=marker),
        payment_status=payment.status,
    )


def _plan(
    payment: PaymentFacts,
    order: WooOrder,
    *,
    gateway: str,
    rules: StatusRules,
    marker: str,
) -> Plan:
    action = decide(payment.status, OrderView(status=order.status, total=order.total), rules)
    facts = _describe_payment(payment)
    transaction_id = payment.transactions[0][1] if payment.transactions else None

    if action.changes_order and order.payment_method != gateway:
        return _not_our_order(order, gateway, action.kind, facts, marker)

    if action.kind is ActionKind.PAY:
        problem = _amount_problem(order, payment)
        if problem is not None:
            if order.status == "on-hold":
                note = f"Cryptum payment confirmed, NOT marked paid: {problem}. {facts}. {marker}"
                return Plan(ActionKind.NOTE_ONLY, problem, None, None, note)
            note = (
                f"Cryptum payment confirmed, order put on hold and NOT marked paid: {problem}. "
                f"{facts}. {marker}"
            )
            return Plan(ActionKind.SET_STATUS, problem, "on-hold", {"status": "on-hold"}, note)
        changes: dict[str, Any] = {"set_paid": True, "meta_data": _payment_meta(payment)}
        if transaction_id:
            changes["transaction_id"] = transaction_id
        if action.via_completion:
            how = "through WooCommerce's payment completion"
        else:
            # WooCommerce skips completion for this status; the status itself marks it paid.
            changes["status"] = "processing"
            how = f"by moving it from {order.status} to processing"
        note = f"Cryptum payment confirmed: order marked paid {how}. {facts}. {marker}"
        return Plan(action.kind, action.reason, "processing", changes, note, transaction_id)

    if action.kind is ActionKind.SET_STATUS:
        changes = {"status": action.target_status}
        if payment.status == "confirmed":
            changes["meta_data"] = _payment_meta(payment)
        note = (
            f"Cryptum payment {payment.status}: order moved from {order.status} to "
            f"{action.target_status} ({action.reason}). {facts}. {marker}"
        )
        return Plan(action.kind, action.reason, action.target_status, changes, note)

    if action.kind is ActionKind.NOTE_ONLY:
        note = (
            f"Cryptum payment {payment.status}, order left {order.status}: {action.reason}. "
            f"{facts}. {marker}"
        )
        return Plan(action.kind, action.reason, None, None, note)

    return Plan(action.kind, action.reason, None, None, None)


def _not_our_order(
    order: WooOrder,
    gateway: str,
    kind: ActionKind,
    facts: str,
    marker: str,
) -> Plan:
    """The order is paid with another gateway: never change its payment state.

    A confirmed Cryptum payment for it still means money arrived, so an
    unpaid order is held for review; anything else leaves it alone. Either
    way the delivery ends on the dead-letter list with the reason.
    """
    problem = f"the order's payment method is {order.payment_method or 'empty'!r}, not {gateway!r}"
    if kind is not ActionKind.PAY:
        return Plan(ActionKind.NOTHING, problem, None, None, None, give_up=problem)
    note = f"Cryptum payment confirmed, but {problem}: NOT marked paid, review. {facts}. {marker}"
    if order.status == "on-hold":
        return Plan(ActionKind.NOTE_ONLY, problem, None, None, note, give_up=problem)
    return Plan(
        ActionKind.SET_STATUS, problem, "on-hold", {"status": "on-hold"}, note, give_up=problem
    )


def is_applied(plan: Plan, order: WooOrder) -> bool:
    """Whether `order` already shows the change `plan` makes (its PUT landed)."""
    if plan.changes is None:
        return True
    if plan.kind == ActionKind.PAY:
        paid = order.status in PAID
        return paid and (plan.transaction_id is None or order.transaction_id == plan.transaction_id)
    return order.status == plan.target_status
