"""One attempt at a delivery, stage by stage: confirm, read, plan, act; the outcome.

`attempt_delivery` reads top to bottom. A plan saved by an earlier attempt
is finished rather than decided again: it was saved before its first side
effect, so an attempt cut short by a lost answer or a crash finds the order
already showing the change and only looks for its note (by the marker the
note carries) and posts it if missing. A happy path costs one plan saved
and three WooCommerce requests; recording the outcome is the worker's.

What must not be acted on is raised, not returned: an `UpstreamFailure`
(the shop or the API failed), `Recheck` or `AwaitingCryptum` (ask the API
again), `Untrusted` (the API does not vouch for the callback). The worker
turns each into its outcome (`delivery_outcome`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from .config import StoreConfig
from .confirmation import Untrusted, confirmed_payment
from .cryptum import CryptumClient
from .delivery_outcome import Outcome, Skipped, after_plan
from .delivery_plan import PaymentFacts, Plan, is_applied, note_marker, plan_delivery
from .payload import InvalidPayload, parse_callback
from .storage import EventFacts, Job, Progress, Storage
from .upstream import FailureKind, UpstreamFailure
from .woocommerce import WooCommerceClient
from .woocommerce_models import WooOrder

__all__ = ["Attempt", "attempt_delivery", "payment_facts"]

log = structlog.get_logger("bridge.delivery")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt at one delivery, and what it may use."""

    job: Job
    store: StoreConfig
    shop: WooCommerceClient
    cryptum: CryptumClient | None
    storage: Storage
    clock: Callable[[], float]
    # How long two final statuses that disagree are asked again (`confirm_recheck_seconds`).
    recheck_seconds: float
    # How long a lagging API is waited for (`reconcile.lookback_hours`).
    lookback_seconds: float


async def attempt_delivery(attempt: Attempt) -> Outcome:
    """Bring the order to what the payment calls for; how the attempt ended."""
    job = attempt.job
    order: WooOrder | None = None
    # A plan is saved only as the delivery starts acting on it.
    saved = (
        Plan.from_json(job.decision) if job.progress is Progress.ACTING and job.decision else None
    )
    if saved is not None:
        order = await read_order(attempt)
        if is_applied(saved, order):
            return await finish_saved_plan(attempt, saved, order)
    elif skipped := await applied_before(attempt, job.status):
        return skipped  # spares asking Cryptum about a status already applied
    payment = await confirm(attempt)
    if payment.status != job.status and (skipped := await applied_before(attempt, payment.status)):
        return skipped
    if order is None:
        order = await read_order(attempt)
    plan = decide(attempt, payment, order)
    await act(attempt, plan)
    return after_plan(plan, job.status, order.status)


async def applied_before(attempt: Attempt, status: str) -> Skipped | None:
    """Skip a status of this payment that another delivery already applied."""
    job = attempt.job
    earlier = await attempt.storage.applied_by(job.store, job.cryptum_order_id, status)
    if earlier is None or earlier == job.delivery_id:
        # A delivery run again by an admin decides anew; the rules see
        # whatever it did the first time on the order itself.
        return None
    return Skipped(f"{status} already applied by delivery {earlier}", status=None)


async def confirm(attempt: Attempt) -> PaymentFacts:
    """The payment as Cryptum's API tells it, for a store with an API key.

    Without a key, the signed callback is all there is; a callback that was
    accepted unsigned is then never applied, whatever the config says now.
    """
    job = attempt.job
    from_callback = payment_facts(job)
    if attempt.cryptum is None:
        if job.signature_form == "unsigned":
            raise Untrusted(
                "accepted without a signature, and the store has no Cryptum API key "
                "to confirm it with: never applied unconfirmed"
            )
        return from_callback
    try:
        api_order = await attempt.cryptum.get_order(job.cryptum_order_id)
    except UpstreamFailure as failure:
        if failure.kind is FailureKind.ORDER_NOT_FOUND:
            raise Untrusted(f"Cryptum does not know order {job.cryptum_order_id}") from None
        raise
    payment = confirmed_payment(
        from_callback,
        api_order,
        store_id=attempt.store.cryptum_store_id,
        woo_order_id=job.woo_order_id,
        received_at=job.age_from,
        now=attempt.clock(),
        recheck_seconds=attempt.recheck_seconds,
        lookback_seconds=attempt.lookback_seconds,
    )
    if payment.status != job.status:
        log.warning("delivery.api_disagrees", callback_status=job.status, api_status=payment.status)
    return payment


async def read_order(attempt: Attempt) -> WooOrder:
    return await attempt.shop.get_order(attempt.job.woo_order_id)


def decide(attempt: Attempt, payment: PaymentFacts, order: WooOrder) -> Plan:
    """The plan for the live order: the checks, then the store's status rules."""
    job = attempt.job
    return plan_delivery(
        payment,
        order,
        gateway=attempt.store.payment_method,
        rules=attempt.store.rules.as_status_rules(),
        marker=note_marker(job.delivery_id, job.generation),
    )


async def act(attempt: Attempt, plan: Plan) -> None:
    """Save the plan, then change the order and note it, each at most once."""
    job = attempt.job
    if plan.changes is None and plan.note is None:
        return
    # Saved before the first side effect: a retry resumes this plan.
    await attempt.storage.save_progress(
        job.delivery_id, Progress.ACTING, plan.to_json(), now=attempt.clock()
    )
    if plan.changes is not None:
        await attempt.shop.update_order(job.woo_order_id, plan.changes)
    if plan.note is not None:
        await attempt.shop.add_note(job.woo_order_id, plan.note)


async def finish_saved_plan(attempt: Attempt, plan: Plan, order: WooOrder) -> Outcome:
    """An earlier attempt's plan shows on the order: post its note if it never arrived."""
    job = attempt.job
    if plan.note is not None:
        marker = note_marker(job.delivery_id, job.generation)
        notes = await attempt.shop.list_notes(job.woo_order_id)
        if not any(marker in note.note for note in notes):
            await attempt.shop.add_note(job.woo_order_id, plan.note)
    return after_plan(plan, job.status, order.status)


def payment_facts(job: Job) -> PaymentFacts:
    """What the event says about the payment: its facts, taken when it was accepted."""
    facts = job.facts if job.facts is not None else _facts_of_older_event(job.payload)
    return PaymentFacts(
        status=job.status,
        cryptum_order_id=job.cryptum_order_id,
        transactions=facts.transactions,
        message=facts.message,
    )


def _facts_of_older_event(payload: bytes | None) -> EventFacts:
    """The facts of an event stored before events kept them: from its callback."""
    try:
        callback = parse_callback(payload or b"")
    except InvalidPayload:
        # A payload that no longer parses (say, purged of personal data)
        # still has its indexed fields, which is all the delivery needs.
        return EventFacts()
    return EventFacts(
        transactions=tuple((t.protocol, t.hash) for t in callback.transactions or ()),
        message=callback.message,
    )
