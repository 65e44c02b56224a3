"""When the callback and Cryptum's API disagree: wait, act on the API, or give up.

Pure. Cryptum's API can lag its own callback: a `confirmed` callback may
arrive while the order still reads `pending`. The API is the truth, but a
lagging API is not a refusal: a claim the API has not caught up with yet is
checked again until it does, or until `reconcile.lookback_hours` have passed.
An API that is ahead of the callback (a `pending` callback arriving after
the payment confirmed) is acted on at once: waiting would only hold back the
payment, and the deliveries queued behind it. A disagreement between two
final statuses (a `confirmed` callback, a `cancelled` order) is checked
again for `delivery.confirm_recheck_seconds`, in case the API is changing
as it is read, then the API's status is acted on.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from .cryptum_models import CryptumOrder
from .delivery_plan import PaymentFacts

__all__ = [
    "AwaitingCryptum",
    "Recheck",
    "Untrusted",
    "Verdict",
    "api_lags",
    "confirmed_payment",
    "judge",
]

# How far a payment has come. A status the API reports that is not listed
# here counts as final: the rules change nothing for it.
_STAGE = {"pending": 0, "on-hold": 1, "confirmed": 2, "failed": 2, "cancelled": 2}
_FINAL = 2


class Verdict(StrEnum):
    ACT = "act"  # act on the API's status now
    RECHECK = "recheck"  # a disagreement: ask again shortly
    AWAIT_API = "await_api"  # the API lags the callback: ask again until the lookback ends
    GIVE_UP = "give_up"  # the API never caught up: an unconfirmed claim, for an admin


def _stage(status: str) -> int:
    return _STAGE.get(status, _FINAL)


def api_lags(claimed: str, api_status: str) -> bool:
    """Whether the API still reports an earlier stage than the callback claims.

    A claim of an unknown status changes nothing whatever the API says, so
    it is never worth waiting for.
    """
    if claimed not in _STAGE:
        return False
    return _stage(api_status) < _stage(claimed)


def judge(
    claimed: str,
    api_status: str,
    *,
    now: float,
    received_at: float,
    recheck_seconds: float,
    lookback_seconds: float,
) -> Verdict:
    """What to do with a callback claiming `claimed` while the API says `api_status`."""
    if claimed == api_status:
        return Verdict.ACT
    if api_lags(claimed, api_status):
        if now < received_at + lookback_seconds:
            return Verdict.AWAIT_API
        return Verdict.GIVE_UP
    if claimed in _STAGE and _stage(api_status) > _stage(claimed):
        return Verdict.ACT  # the API is ahead
    if now < received_at + recheck_seconds:
        return Verdict.RECHECK
    return Verdict.ACT


class Untrusted(Exception):
    """Cryptum's API does not vouch for the callback: nothing is applied, an admin must look."""


class AwaitingCryptum(Exception):
    """Cryptum's API has not caught up with the callback yet: check again later."""


class Recheck(Exception):
    """The callback and the API disagree on a final status: ask the API again shortly."""


def confirmed_payment(
    claimed: PaymentFacts,
    api_order: CryptumOrder,
    *,
    store_id: str,
    woo_order_id: str,
    received_at: float,
    now: float,
    recheck_seconds: float,
    lookback_seconds: float,
) -> PaymentFacts:
    """The payment to act on, as the API tells it; raises when it must not be acted on now.

    The order must belong to `store_id` and to `woo_order_id`, else
    `Untrusted`. Its status, not the callback's, is acted on once `judge`
    says so: `Recheck` and `AwaitingCryptum` ask again later, and an API
    that never caught up is `Untrusted` too.
    """
    if api_order.store_id != store_id:
        raise Untrusted("the Cryptum order belongs to another store")
    if api_order.ecommerce_order_id != woo_order_id:
        raise Untrusted(
            f"the Cryptum order is for WooCommerce order {api_order.ecommerce_order_id}"
        )
    api_status = api_order.payment_status
    verdict = judge(
        claimed.status,
        api_status,
        now=now,
        received_at=received_at,
        recheck_seconds=recheck_seconds,
        lookback_seconds=lookback_seconds,
    )
    disagreement = f"the Cryptum API says {api_status!r} where the callback says {claimed.status!r}"
    if verdict is Verdict.RECHECK:
        raise Recheck(f"{disagreement}; checking again")
    if verdict is Verdict.AWAIT_API:
        raise AwaitingCryptum(f"{disagreement}; waiting for the API to catch up")
    if verdict is Verdict.GIVE_UP:
        hours = lookback_seconds / 3600
        raise Untrusted(f"{disagreement} {hours:g} h after it arrived: nothing applied")
    transactions = tuple((t.protocol, t.hash) for t in api_order.transactions or ())
    return replace(
        claimed,
        status=api_status,
        transactions=transactions or claimed.transactions,
        expected_total=api_order.order_total,
        expected_currency=api_order.order_currency,
    )
