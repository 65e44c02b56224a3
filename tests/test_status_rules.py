"""The contract's status table, row by row and cell by cell."""

from __future__ import annotations

import pytest

from bridge.status_rules import ActionKind, OrderView, StatusRules, decide

PAY, SET, NOTE, NOTHING = (
    ActionKind.PAY,
    ActionKind.SET_STATUS,
    ActionKind.NOTE_ONLY,
    ActionKind.NOTHING,
)

# (cryptum status, woocommerce status) -> (kind, target status)
TABLE = {
    ("confirmed", "pending"): (PAY, "processing"),
    ("confirmed", "on-hold"): (PAY, "processing"),
    ("confirmed", "failed"): (PAY, "processing"),
    ("confirmed", "checkout-draft"): (PAY, "processing"),
    ("confirmed", "processing"): (NOTHING, None),
    ("confirmed", "completed"): (NOTHING, None),
    ("confirmed", "cancelled"): (SET, "on-hold"),
    ("confirmed", "refunded"): (NOTE, None),
    ("on-hold", "pending"): (SET, "on-hold"),
    ("on-hold", "on-hold"): (NOTHING, None),
    ("on-hold", "failed"): (NOTHING, None),
    ("on-hold", "checkout-draft"): (NOTHING, None),
    ("on-hold", "processing"): (NOTHING, None),
    ("on-hold", "completed"): (NOTHING, None),
    ("on-hold", "cancelled"): (NOTHING, None),
    ("on-hold", "refunded"): (NOTHING, None),
    ("failed", "pending"): (SET, "failed"),
    ("failed", "on-hold"): (SET, "failed"),
    ("failed", "failed"): (NOTHING, None),
    ("failed", "checkout-draft"): (NOTHING, None),
    ("failed", "processing"): (NOTHING, None),
    ("failed", "completed"): (NOTHING, None),
    ("failed", "cancelled"): (NOTHING, None),
    ("failed", "refunded"): (NOTHING, None),
    ("cancelled", "pending"): (SET, "cancelled"),
    ("cancelled", "on-hold"): (SET, "cancelled"),
    ("cancelled", "failed"): (SET, "cancelled"),
    ("cancelled", "checkout-draft"): (NOTHING, None),
    ("cancelled", "processing"): (NOTHING, None),
    ("cancelled", "completed"): (NOTHING, None),
    ("cancelled", "cancelled"): (NOTHING, None),
    ("cancelled", "refunded"): (NOTHING, None),
}
WOO_STATUSES = [
    "pending",
    "on-hold",
    "failed",
    "checkout-draft",
    "processing",
    "completed",
    "cancelled",
    "refunded",
]
for woo_status in WOO_STATUSES:
    TABLE[("pending", woo_status)] = (NOTHING, None)
    TABLE[("refund-requested", woo_status)] = (NOTHING, None)  # an unknown status


@pytest.mark.parametrize(("cryptum_status", "woo_status"), sorted(TABLE))
def test_each_cell_of_the_table(cryptum_status: str, woo_status: str) -> None:
    action = decide(cryptum_status, OrderView(status=woo_status, total="20.00"))
    assert (action.kind, action.target_status) == TABLE[(cryptum_status, woo_status)]
    assert action.reason


def test_the_table_covers_every_status_pair() -> None:
    cryptum = {"confirmed", "on-hold", "failed", "cancelled", "pending", "refund-requested"}
    assert {(c, w) for c in cryptum for w in WOO_STATUSES} == set(TABLE)


@pytest.mark.parametrize(
    ("woo_status", "total", "completion"),
    [
        ("pending", "20.00", True),
        ("failed", "20.00", True),
        ("on-hold", "20.00", False),  # WooCommerce skips completion: explicit status
        ("checkout-draft", "20.00", False),
        ("pending", "0.00", False),  # nothing to pay: completion would not run
        ("pending", "not-a-number", False),
    ],
)
def test_payment_goes_through_completion_only_where_woocommerce_runs_it(
    woo_status: str, total: str, completion: bool
) -> None:
    action = decide("confirmed", OrderView(status=woo_status, total=total))
    assert action.kind is PAY
    assert action.via_completion is completion


def test_a_paid_order_is_never_moved_backwards() -> None:
    for cryptum_status in ("on-hold", "failed", "cancelled", "pending"):
        for paid in ("processing", "completed"):
            assert not decide(cryptum_status, OrderView(status=paid)).changes_order


def test_paid_after_cancellation_is_held_for_review_with_a_note() -> None:
    action = decide("confirmed", OrderView(status="cancelled"))
    assert action.target_status == "on-hold"
    assert action.needs_note
    assert "review" in action.reason


def test_a_store_can_ignore_a_status() -> None:
    rules = StatusRules(confirmed="ignore", on_hold="ignore")
    assert decide("confirmed", OrderView(status="pending"), rules).kind is NOTHING
    assert decide("on-hold", OrderView(status="pending"), rules).kind is NOTHING
    assert decide("failed", OrderView(status="pending"), rules).target_status == "failed"


def test_a_store_can_cancel_failed_payments() -> None:
    action = decide("failed", OrderView(status="on-hold"), StatusRules(failed="cancelled"))
    assert (action.kind, action.target_status) == (SET, "cancelled")
    assert (
        decide("failed", OrderView(status="cancelled"), StatusRules(failed="cancelled")).kind
        is NOTHING
    )
