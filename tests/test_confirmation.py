"""When the callback and Cryptum's API disagree: the verdict, row by row."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.confirmation import (
    AwaitingCryptum,
    Recheck,
    Untrusted,
    Verdict,
    api_lags,
    confirmed_payment,
    judge,
)
from bridge.cryptum_models import CryptumOrder
from bridge.delivery_plan import PaymentFacts

RECEIVED = 1_000_000.0
RECHECK = 300.0
LOOKBACK = 48 * 3600.0


def verdict(claimed: str, api: str, after: float) -> Verdict:
    return judge(
        claimed,
        api,
        now=RECEIVED + after,
        received_at=RECEIVED,
        recheck_seconds=RECHECK,
        lookback_seconds=LOOKBACK,
    )


@pytest.mark.parametrize(
    ("claimed", "api", "lags"),
    [
        ("confirmed", "pending", True),
        ("confirmed", "on-hold", True),
        ("on-hold", "pending", True),
        ("cancelled", "pending", True),
        ("failed", "on-hold", True),
        ("confirmed", "confirmed", False),
        ("confirmed", "cancelled", False),  # settled elsewhere: not a lag
        ("pending", "confirmed", False),  # the API is ahead
        ("on-hold", "confirmed", False),
        ("pending", "pending", False),
        ("expired", "pending", False),  # an unknown claim changes nothing: never waited for
        ("confirmed", "refunded", False),  # an unknown API status counts as final
    ],
)
def test_a_lag_is_an_api_behind_the_callbacks_claim(claimed: str, api: str, lags: bool) -> None:
    assert api_lags(claimed, api) is lags


def test_agreement_is_acted_on_at_once() -> None:
    assert verdict("confirmed", "confirmed", 0) is Verdict.ACT


def test_a_lagging_api_is_awaited_until_the_lookback_ends() -> None:
    assert verdict("confirmed", "pending", 0) is Verdict.AWAIT_API
    # Well past the recheck window: still waiting, never acting on "pending".
    assert verdict("confirmed", "pending", RECHECK + 1) is Verdict.AWAIT_API
    assert verdict("confirmed", "on-hold", LOOKBACK - 1) is Verdict.AWAIT_API
    assert verdict("confirmed", "pending", LOOKBACK) is Verdict.GIVE_UP


def test_an_api_ahead_of_the_callback_is_acted_on_at_once() -> None:
    # A pending callback arriving after the payment confirmed must not hold it back.
    assert verdict("pending", "confirmed", 0) is Verdict.ACT
    assert verdict("on-hold", "confirmed", 0) is Verdict.ACT
    assert verdict("pending", "on-hold", 0) is Verdict.ACT


def test_two_final_statuses_are_rechecked_then_the_api_wins() -> None:
    assert verdict("confirmed", "cancelled", 0) is Verdict.RECHECK
    assert verdict("cancelled", "confirmed", RECHECK - 1) is Verdict.RECHECK
    assert verdict("confirmed", "cancelled", RECHECK) is Verdict.ACT
    # An unknown claim is no stage: the API's status is checked again, then acted on.
    assert verdict("expired", "confirmed", 0) is Verdict.RECHECK
    assert verdict("expired", "confirmed", RECHECK) is Verdict.ACT


# The payment to act on, from the API's order ------------------------------------------

STORE = "store-1"
CLAIM = PaymentFacts(
    status="confirmed",
    cryptum_order_id="c-1",
    transactions=(("POLYGON", "0xcallback"),),
    message="Payment was successful",
)


def api_order(**fields: Any) -> CryptumOrder:
    document = {
        "id": "c-1",
        "ecommerceOrderId": "12",
        "store": {"id": STORE},
        "paymentStatus": "confirmed",
        "orderTotal": "12.50",
        "orderCurrency": "USD",
        "transactions": [{"protocol": "ETHEREUM", "hash": "0xapi"}],
    }
    return CryptumOrder.model_validate(document | fields)


def confirmed(
    order: CryptumOrder, *, claim: PaymentFacts = CLAIM, after: float = 0
) -> PaymentFacts:
    return confirmed_payment(
        claim,
        order,
        store_id=STORE,
        woo_order_id="12",
        received_at=RECEIVED,
        now=RECEIVED + after,
        recheck_seconds=RECHECK,
        lookback_seconds=LOOKBACK,
    )


def test_the_apis_order_is_acted_on_with_its_amount_and_transactions() -> None:
    assert confirmed(api_order()) == PaymentFacts(
        status="confirmed",
        cryptum_order_id="c-1",
        transactions=(("ETHEREUM", "0xapi"),),
        message="Payment was successful",
        expected_total="12.50",
        expected_currency="USD",
    )


def test_without_transactions_from_the_api_the_callbacks_are_kept() -> None:
    assert confirmed(api_order(transactions=[])).transactions == (("POLYGON", "0xcallback"),)


def refusal(order: CryptumOrder, after: float = 0) -> tuple[str, str]:
    """The exception `confirmed` raises for `order`: its type's name and its message."""
    try:
        confirmed(order, after=after)
    except (Untrusted, Recheck, AwaitingCryptum) as raised:
        return type(raised).__name__, str(raised)
    raise AssertionError("acted on")


def test_an_order_of_another_store_or_woocommerce_order_is_untrusted() -> None:
    assert refusal(api_order(store={"id": "store-2"})) == (
        "Untrusted",
        "the Cryptum order belongs to another store",
    )
    assert refusal(api_order(ecommerceOrderId="13")) == (
        "Untrusted",
        "the Cryptum order is for WooCommerce order 13",
    )


def test_an_api_ahead_of_the_claim_is_acted_on() -> None:
    claim = PaymentFacts(status="pending", cryptum_order_id="c-1")
    assert confirmed(api_order(), claim=claim).status == "confirmed"


def test_a_final_disagreement_is_rechecked_then_the_api_wins() -> None:
    cancelled = api_order(paymentStatus="cancelled")
    assert refusal(cancelled, after=RECHECK - 1) == (
        "Recheck",
        "the Cryptum API says 'cancelled' where the callback says 'confirmed'; checking again",
    )
    assert confirmed(cancelled, after=RECHECK).status == "cancelled"


def test_a_lagging_api_is_awaited_then_the_claim_is_untrusted() -> None:
    pending = api_order(paymentStatus="pending")
    disagreement = "the Cryptum API says 'pending' where the callback says 'confirmed'"
    assert refusal(pending, after=LOOKBACK - 1) == (
        "AwaitingCryptum",
        f"{disagreement}; waiting for the API to catch up",
    )
    assert refusal(pending, after=LOOKBACK) == (
        "Untrusted",
        f"{disagreement} 48 h after it arrived: nothing applied",
    )
