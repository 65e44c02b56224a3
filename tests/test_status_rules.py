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
# Beyond WooCommerce's own: a status a plugin adds.
UNKNOWN_WOO_STATUS = "awaiting-shipment"


def stays(woo_status: str, target: str) -> tuple[ActionKind, None, str]:
    return (NOTHING, None, f"an order that is {woo_status} does not move to {target}")


# (cryptum status, woocommerce status) -> (kind, target status, reason). The
# reason is what the order note and `deliveries show` tell the shop.
TABLE: dict[tuple[str, str], tuple[ActionKind, str | None, str]] = {
    ("confirmed", "pending"): (PAY, "processing", "payment confirmed"),
    ("confirmed", "on-hold"): (PAY, "processing", "payment confirmed"),
    ("confirmed", "failed"): (PAY, "processing", "payment confirmed"),
    ("confirmed", "checkout-draft"): (PAY, "processing", "payment confirmed"),
    ("confirmed", "processing"): (NOTHING, None, "already paid"),
    ("confirmed", "completed"): (NOTHING, None, "already paid"),
    ("confirmed", "cancelled"): (SET, "on-hold", "paid after cancellation, review"),
    ("confirmed", "refunded"): (NOTE, None, "payment confirmed after a refund, review"),
    ("confirmed", UNKNOWN_WOO_STATUS): (NOTHING, None, f"order is {UNKNOWN_WOO_STATUS}"),
    ("on-hold", "pending"): (SET, "on-hold", "payment on-hold"),
    ("on-hold", "on-hold"): (NOTHING, None, "already on-hold"),
    ("failed", "pending"): (SET, "failed", "payment failed"),
    ("failed", "on-hold"): (SET, "failed", "payment failed"),
    ("failed", "failed"): (NOTHING, None, "already failed"),
    ("cancelled", "pending"): (SET, "cancelled", "payment cancelled"),
    ("cancelled", "on-hold"): (SET, "cancelled", "payment cancelled"),
    ("cancelled", "failed"): (SET, "cancelled", "payment cancelled"),
    ("cancelled", "cancelled"): (NOTHING, None, "already cancelled"),
}
for woo_status in [*WOO_STATUSES, UNKNOWN_WOO_STATUS]:
    for unpaid_status in ("on-hold", "failed", "cancelled"):
        # Every other order stays as it is.
        TABLE.setdefault((unpaid_status, woo_status), stays(woo_status, unpaid_status))
    TABLE[("pending", woo_status)] = (NOTHING, None, "payment pending")
    # An unknown payment status:
    TABLE[("refund-requested", woo_status)] = (
        NOTHING,
        None,
        "unknown payment status 'refund-requested'",
    )


@pytest.mark.parametrize(("cryptum_status", "woo_status"), sorted(TABLE))
def test_each_cell_of_the_table(cryptum_status: str, woo_status: str) -> None:
    action = decide(cryptum_status, OrderView(status=woo_status, total="20.00"))
    assert (action.kind, action.target_status, action.reason) == TABLE[(cryptum_status, woo_status)]


def test_the_table_covers_every_status_pair() -> None:
    cryptum = {"confirmed", "on-hold", "failed", "cancelled", "pending", "refund-requested"}
    woo = [*WOO_STATUSES, UNKNOWN_WOO_STATUS]
    assert {(c, w) for c in cryptum for w in woo} == set(TABLE)


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


@pytest.mark.parametrize(
    ("cryptum_status", "rules", "reason"),
    [
        ("confirmed", StatusRules(confirmed="ignore"), "confirmed payments are ignored"),
        ("on-hold", StatusRules(on_hold="ignore"), "on-hold payments are ignored"),
        ("failed", StatusRules(failed="ignore"), "failed payments are ignored"),
        ("cancelled", StatusRules(cancelled="ignore"), "cancelled payments are ignored"),
    ],
)
@pytest.mark.parametrize("woo_status", [*WOO_STATUSES, UNKNOWN_WOO_STATUS])
def test_an_ignored_status_changes_no_order_and_says_why(
    cryptum_status: str, rules: StatusRules, reason: str, woo_status: str
) -> None:
    action = decide(cryptum_status, OrderView(status=woo_status, total="20.00"), rules)
    assert (action.kind, action.target_status) == (NOTHING, None)
    assert action.reason == f"{reason} for this store"
    assert not action.changes_order and not action.needs_note


def test_an_ignored_status_leaves_the_others_to_the_table() -> None:
    for ignored in ("confirmed", "on-hold", "failed", "cancelled"):
        rules = StatusRules(**{ignored.replace("-", "_"): "ignore"})
        for cryptum_status in ("confirmed", "on-hold", "failed", "cancelled"):
            if cryptum_status == ignored:
                continue
            for woo_status in WOO_STATUSES:
                action = decide(cryptum_status, OrderView(status=woo_status, total="20.00"), rules)
                expected = TABLE[(cryptum_status, woo_status)]
                assert (action.kind, action.target_status, action.reason) == expected


@pytest.mark.parametrize(
    ("woo_status", "expected"),
    [
        ("pending", (SET, "cancelled", "payment failed")),
        ("on-hold", (SET, "cancelled", "payment failed")),
        ("failed", stays("failed", "cancelled")),
        ("cancelled", (NOTHING, None, "already cancelled")),
        ("processing", stays("processing", "cancelled")),
        ("completed", stays("completed", "cancelled")),
    ],
)
def test_a_store_can_cancel_failed_payments(
    woo_status: str, expected: tuple[ActionKind, str | None, str]
) -> None:
    action = decide("failed", OrderView(status=woo_status), StatusRules(failed="cancelled"))
    assert (action.kind, action.target_status, action.reason) == expected
