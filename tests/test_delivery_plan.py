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
from bridge.woocommerce import WooOrder

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
    assert json.loads(meta[META_TRANSACTIONS]) == [{"protocol": "CELO", "hash": "0xabc"}]
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


@pytest.mark.parametrize(
    ("fields", "applied"),
    [
        ({"status": "processing", "transaction_id": "0xabc"}, True),
        ({"status": "completed", "transaction_id": "0xabc"}, True),
        ({"status": "processing", "transaction_id": "0xother"}, False),
        ({"status": "pending"}, False),
    ],
)
def test_is_applied_for_a_payment(fields: dict[str, Any], applied: bool) -> None:
    paying = plan(payment(), order(status="pending"))
    assert is_applied(paying, order(**fields)) is applied


def test_is_applied_for_a_status_change() -> None:
    cancelling = plan(payment("cancelled"), order(status="pending"))
    assert is_applied(cancelling, order(status="cancelled"))
    assert not is_applied(cancelling, order(status="pending"))


def test_markers_differ_per_delivery_and_generation() -> None:
    assert len({note_marker(1, 1), note_marker(1, 2), note_marker(2, 1)}) == 3
