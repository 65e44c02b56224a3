"""Planning one delivery: the PUT body, the checks before paid, the note, `is_applied`."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bridge.delivery_plan import (
    META_MESSAGE,
    META_ORDER_ID,
    META_TRANSACTIONS,
    PaymentFacts,
    Plan,
    is_applied,
    note_marker,
    plan_delivery,
)
from bridge.status_rules import StatusRules
from bridge.woocommerce_models import WooOrder

GATEWAY = "cryptumcheckout_gateway"
MARKER = note_marker(7, 1)


def order(**fields: Any) -> WooOrder:
    defaults = {
        "id": 11,
        "status": "pending",
        "total": "20.00",
        "currency": "USD",
        "payment_method": GATEWAY,
        "transaction_id": "",
    }
    return WooOrder.model_validate(defaults | fields)


def payment(status: str = "confirmed", **fields: Any) -> PaymentFacts:
    defaults: dict[str, Any] = {
        "cryptum_order_id": "c-1",
        "transactions": (("CELO", "0xabc"),),
        "message": "Payment was successful",
    }
    return PaymentFacts(status=status, **(defaults | fields))


def plan(facts: PaymentFacts, current: WooOrder, rules: StatusRules | None = None) -> Plan:
    return plan_delivery(
        facts, current, gateway=GATEWAY, rules=rules or StatusRules(), marker=MARKER
    )


def test_pending_order_is_paid_through_payment_completion() -> None:
    result = plan(payment(), order(status="pending"))
    assert result.changes is not None
    assert "status" not in result.changes  # so WooCommerce runs payment_complete()
    assert result.changes["set_paid"] is True
    assert result.changes["transaction_id"] == "0xabc"
    meta = {entry["key"]: entry["value"] for entry in result.changes["meta_data"]}
    # Compact, as the reference plugin writes it (PHP's json_encode), for its screens.
    assert meta[META_TRANSACTIONS] == '[{"protocol":"CELO","hash":"0xabc"}]'
    assert meta[META_ORDER_ID] == "c-1"
    assert meta[META_MESSAGE] == "Payment was successful"
    assert result.note is not None and result.note.endswith(MARKER)
    assert "0xabc" in result.note and "c-1" in result.note


def test_on_hold_order_is_paid_with_an_explicit_status() -> None:
    result = plan(payment(), order(status="on-hold"))
    assert result.changes is not None
    assert result.changes["status"] == "processing"
    assert result.changes["set_paid"] is True


def test_payment_for_another_gateways_order_holds_it_for_review_unpaid() -> None:
    result = plan(payment(), order(payment_method="bacs"))
    assert result.changes == {"status": "on-hold"}
    assert result.note is not None and "NOT marked paid" in result.note and "bacs" in result.note
    assert result.give_up is not None and "bacs" in result.give_up


def test_payment_for_another_gateways_order_on_hold_only_notes() -> None:
    result = plan(payment(), order(payment_method="bacs", status="on-hold"))
    assert (result.changes, result.give_up is not None) == (None, True)
    assert result.note is not None


@pytest.mark.parametrize("status", ["cancelled", "failed", "on-hold"])
def test_other_statuses_never_touch_another_gateways_order(status: str) -> None:
    result = plan(payment(status), order(payment_method="bacs"))
    assert (result.changes, result.note) == (None, None)
    assert result.give_up is not None


def test_wrong_payment_method_does_not_matter_when_nothing_changes() -> None:
    result = plan(payment(), order(status="processing", payment_method="bacs"))
    assert result.changes is None and result.note is None


@pytest.mark.parametrize(
    ("expected_total", "expected_currency", "problem"),
    [
        ("10.00", "USD", "amount mismatch"),
        ("20.00", "BRL", "currency mismatch"),
        ("twenty", "USD", "amount mismatch"),
    ],
)
def test_amount_or_currency_mismatch_holds_the_order_unpaid(
    expected_total: str, expected_currency: str, problem: str
) -> None:
    facts = payment(expected_total=expected_total, expected_currency=expected_currency)
    result = plan(facts, order(status="pending"))
    assert result.changes == {"status": "on-hold"}
    assert result.note is not None and problem in result.note and "NOT marked paid" in result.note


def test_mismatch_on_an_order_already_on_hold_only_notes() -> None:
    result = plan(payment(expected_total="1.00"), order(status="on-hold"))
    assert result.changes is None
    assert result.note is not None and "amount mismatch" in result.note


def test_equal_amounts_in_other_notations_match() -> None:
    result = plan(payment(expected_total="20", expected_currency="usd"), order(total="20.00"))
    assert result.changes is not None and result.changes["set_paid"] is True


def test_cancellation_after_payment_changes_nothing() -> None:
    result = plan(payment("cancelled"), order(status="processing"))
    assert (result.changes, result.note) == (None, None)


def test_paid_after_cancellation_goes_on_hold_with_meta_and_a_note() -> None:
    result = plan(payment(), order(status="cancelled"))
    assert result.changes is not None
    assert result.changes["status"] == "on-hold"
    assert "set_paid" not in result.changes
    assert {entry["key"] for entry in result.changes["meta_data"]} >= {META_TRANSACTIONS}
    assert result.note is not None and "review" in result.note


FACTS = "CELO transaction 0xabc, Cryptum order c-1"
NOT_OURS = "the order's payment method is 'bacs', not 'cryptumcheckout_gateway'"


@pytest.mark.parametrize(
    ("facts", "current", "expected"),
    [
        pytest.param(
            payment(),
            order(status="pending"),
            (
                "pay",
                "payment confirmed",
                "processing",
                {"set_paid": True, "transaction_id": "0xabc"},
                "Cryptum payment confirmed: order marked paid through WooCommerce's payment "
                f"completion. {FACTS}. {MARKER}",
                None,
            ),
            id="paid-through-completion",
        ),
        pytest.param(
            payment(),
            order(status="on-hold"),
            (
                "pay",
                "payment confirmed",
                "processing",
                {"set_paid": True, "transaction_id": "0xabc", "status": "processing"},
                "Cryptum payment confirmed: order marked paid by moving it from on-hold to "
                f"processing. {FACTS}. {MARKER}",
                None,
            ),
            id="paid-with-an-explicit-status",
        ),
        pytest.param(
            payment(transactions=()),
            order(status="checkout-draft"),
            (
                "pay",
                "payment confirmed",
                "processing",
                {"set_paid": True, "status": "processing"},
                "Cryptum payment confirmed: order marked paid by moving it from checkout-draft "
                f"to processing. Cryptum order c-1. {MARKER}",
                None,
            ),
            id="paid-without-a-transaction",
        ),
        pytest.param(
            payment(transactions=(("CELO", "0xabc"), ("ETH", "0xdef"))),
            order(status="failed"),
            (
                "pay",
                "payment confirmed",
                "processing",
                {"set_paid": True, "transaction_id": "0xabc"},
                "Cryptum payment confirmed: order marked paid through WooCommerce's payment "
                f"completion. CELO transaction 0xabc, ETH transaction 0xdef, Cryptum order c-1. "
                f"{MARKER}",
                None,
            ),
            id="paid-with-two-transactions",
        ),
        pytest.param(
            payment(expected_total="10.00"),
            order(status="pending"),
            (
                "set_status",
                "amount mismatch: the order total is 20.00, the Cryptum order's is 10.00",
                "on-hold",
                {"status": "on-hold"},
                "Cryptum payment confirmed, order put on hold and NOT marked paid: amount "
                "mismatch: the order total is 20.00, the Cryptum order's is 10.00. "
                f"{FACTS}. {MARKER}",
                None,
            ),
            id="amount-mismatch",
        ),
        pytest.param(
            payment(expected_currency="BRL"),
            order(status="on-hold"),
            (
                "note_only",
                "currency mismatch: the order is in USD, the Cryptum payment in BRL",
                None,
                None,
                "Cryptum payment confirmed, NOT marked paid: currency mismatch: the order is "
                f"in USD, the Cryptum payment in BRL. {FACTS}. {MARKER}",
                None,
            ),
            id="currency-mismatch-on-hold",
        ),
        pytest.param(
            payment("cancelled"),
            order(status="on-hold"),
            (
                "set_status",
                "payment cancelled",
                "cancelled",
                {"status": "cancelled"},
                "Cryptum payment cancelled: order moved from on-hold to cancelled (payment "
                f"cancelled). {FACTS}. {MARKER}",
                None,
            ),
            id="cancelled",
        ),
        pytest.param(
            payment(),
            order(status="cancelled"),
            (
                "set_status",
                "paid after cancellation, review",
                "on-hold",
                {"status": "on-hold"},
                "Cryptum payment confirmed: order moved from cancelled to on-hold (paid after "
                f"cancellation, review). {FACTS}. {MARKER}",
                None,
            ),
            id="paid-after-cancellation",
        ),
        pytest.param(
            payment(),
            order(status="refunded"),
            (
                "note_only",
                "payment confirmed after a refund, review",
                None,
                None,
                "Cryptum payment confirmed, order left refunded: payment confirmed after a "
                f"refund, review. {FACTS}. {MARKER}",
                None,
            ),
            id="paid-after-refund",
        ),
        pytest.param(
            payment("failed"),
            order(status="processing"),
            (
                "nothing",
                "an order that is processing does not move to failed",
                None,
                None,
                None,
                None,
            ),
            id="failed-after-payment",
        ),
        pytest.param(
            payment(),
            order(payment_method="bacs"),
            (
                "set_status",
                NOT_OURS,
                "on-hold",
                {"status": "on-hold"},
                f"Cryptum payment confirmed, but {NOT_OURS}: NOT marked paid, review. "
                f"{FACTS}. {MARKER}",
                NOT_OURS,
            ),
            id="another-gateway",
        ),
        pytest.param(
            payment(),
            order(payment_method="", status="on-hold"),
            (
                "note_only",
                "the order's payment method is 'empty', not 'cryptumcheckout_gateway'",
                None,
                None,
                "Cryptum payment confirmed, but the order's payment method is 'empty', not "
                f"'cryptumcheckout_gateway': NOT marked paid, review. {FACTS}. {MARKER}",
                "the order's payment method is 'empty', not 'cryptumcheckout_gateway'",
            ),
            id="no-gateway-on-hold",
        ),
        pytest.param(
            payment("cancelled"),
            order(payment_method="bacs"),
            ("nothing", NOT_OURS, None, None, None, NOT_OURS),
            id="another-gateway-cancelled",
        ),
    ],
)
def test_each_plan_in_full(
    facts: PaymentFacts, current: WooOrder, expected: tuple[Any, ...]
) -> None:
    """Kind, reason, target, PUT body (its meta aside), note and give-up reason."""
    result = plan(facts, current)
    changes = None
    if result.changes is not None:
        changes = {key: value for key, value in result.changes.items() if key != "meta_data"}
    got = (result.kind, result.reason, result.target_status, changes, result.note, result.give_up)
    assert got == expected
    assert result.payment_status == facts.status


def test_the_stores_rules_decide_the_plan() -> None:
    ignoring = plan(payment(), order(status="pending"), StatusRules(confirmed="ignore"))
    assert (ignoring.kind, ignoring.changes, ignoring.note) == ("nothing", None, None)
    assert ignoring.reason == "confirmed payments are ignored for this store"
    cancelling = plan(payment("failed"), order(status="pending"), StatusRules(failed="cancelled"))
    assert (cancelling.target_status, cancelling.changes) == ("cancelled", {"status": "cancelled"})


def test_plan_survives_its_json_round_trip_without_the_callbacks_message() -> None:
    result = plan(payment(message="Paid by Maria Silva, maria@example.org"), order())
    saved = json.dumps(result.to_json())
    # The free-text message (customer data, possibly) is written to the order,
    # never kept with the delivery; a resumed plan does not need it.
    assert "Maria" not in saved and "meta_data" not in saved
    assert result.changes is not None and "meta_data" in result.changes
    without_meta = {k: v for k, v in result.changes.items() if k != "meta_data"}
    assert Plan.from_json(json.loads(saved)) == replace(result, changes=without_meta)
    assert Plan.from_json(json.loads(saved)).payment_status == "confirmed"


WOO_STATUSES = [
    "pending",
    "on-hold",
    "failed",
    "processing",
    "completed",
    "cancelled",
    "refunded",
    "checkout-draft",
]
PAID = {"processing", "completed"}


@pytest.mark.parametrize("status", WOO_STATUSES)
@pytest.mark.parametrize("order_transaction", ["", "0xabc", "0xother"])
def test_a_payment_with_a_transaction_is_applied_once_paid_with_that_transaction(
    status: str, order_transaction: str
) -> None:
    paying = plan(payment(), order(status="pending"))
    assert paying.transaction_id == "0xabc"
    current = order(status=status, transaction_id=order_transaction)
    assert is_applied(paying, current) is (status in PAID and order_transaction == "0xabc")


@pytest.mark.parametrize("status", WOO_STATUSES)
@pytest.mark.parametrize("order_transaction", ["", "0xother"])
def test_a_payment_without_a_transaction_is_applied_once_paid(
    status: str, order_transaction: str
) -> None:
    paying = plan(payment(transactions=()), order(status="pending"))
    assert paying.transaction_id is None
    current = order(status=status, transaction_id=order_transaction)
    assert is_applied(paying, current) is (status in PAID)


def test_an_order_paid_with_another_transaction_does_not_show_this_payment() -> None:
    paying = plan(payment(transactions=(("CELO", "0xnew"),)), order(status="on-hold"))
    for status in PAID:
        assert not is_applied(paying, order(status=status, transaction_id="0xold"))
        assert is_applied(paying, order(status=status, transaction_id="0xnew"))


@pytest.mark.parametrize("status", WOO_STATUSES)
def test_a_resumed_payment_plan_is_still_a_payment(status: str) -> None:
    # A saved plan comes back with its kind as a plain string.
    saved = plan(payment(), order(status="on-hold"))
    resumed = Plan.from_json(json.loads(json.dumps(saved.to_json())))
    assert type(resumed.kind) is str
    current = order(status=status, transaction_id="0xabc")
    assert is_applied(resumed, current) is is_applied(saved, current) is (status in PAID)


@pytest.mark.parametrize(
    ("facts", "before", "target"),
    [
        (payment("cancelled"), "pending", "cancelled"),
        (payment("failed"), "on-hold", "failed"),
        (payment("on-hold"), "pending", "on-hold"),
        (payment(), "cancelled", "on-hold"),  # paid after cancellation
        (payment(expected_total="1.00"), "pending", "on-hold"),  # amount mismatch
    ],
    ids=["cancelled", "failed", "on-hold", "paid-after-cancellation", "mismatch"],
)
@pytest.mark.parametrize("status", WOO_STATUSES)
def test_a_status_change_is_applied_once_the_order_has_that_status(
    facts: PaymentFacts, before: str, target: str, status: str
) -> None:
    changing = plan(facts, order(status=before))
    assert changing.target_status == target
    assert is_applied(changing, order(status=status, transaction_id="0xabc")) is (status == target)


@pytest.mark.parametrize(
    ("facts", "current"),
    [
        (payment(), order(status="refunded")),  # a note only
        (payment(expected_total="1.00"), order(status="on-hold")),  # a note only
        (payment("cancelled"), order(status="processing")),  # nothing at all
        (payment("pending"), order(status="pending")),
    ],
)
@pytest.mark.parametrize("status", WOO_STATUSES)
def test_a_plan_that_changes_nothing_has_nothing_left_to_apply(
    facts: PaymentFacts, current: WooOrder, status: str
) -> None:
    unchanged = plan(facts, current)
    assert unchanged.changes is None
    assert is_applied(unchanged, order(status=status))


def test_markers_differ_per_delivery_and_generation() -> None:
    assert len({note_marker(1, 1), note_marker(1, 2), note_marker(2, 1)}) == 3
