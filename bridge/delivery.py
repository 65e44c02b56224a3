"""The delivery worker: brings each WooCommerce order to the status its payment calls for.

Each delivery runs in typed stages: confirm with Cryptum's API (stores with
an API key), read the order, decide (checks and the status rules), update,
note once, finish. The plan is saved as `acting` before its first side
effect, so a retry after a lost answer or a crash neither repeats a change
nor adds a second note: a retry that finds the order already showing the
plan's change only looks for the note's marker among the order's notes, and
posts the note if it is missing. A happy path costs two database writes (the
plan, the finish) and three WooCommerce requests.

A delivery acts on the status Cryptum's API reports, once the API has caught
up with the callback (`confirmation.judge`), and records that status as
applied in the statement that finishes it. A status already applied to the
Cryptum order, by this delivery's event or any other, is not applied again.

Deliveries of one order run one at a time in arrival order (the queue sees
to that); different orders run in parallel, up to `delivery.concurrency`
per store.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from .background import BackgroundLoop
from .backoff import retry_delay
from .config import Config, StoreConfig
from .confirmation import Verdict, judge
from .cryptum import CryptumClient
from .delivery_plan import (
    PaymentFacts,
    Plan,
    is_applied,
    note_marker,
    plan_delivery,
)
from .metrics import Metrics
from .payload import InvalidPayload, parse_callback
from .storage import DeliveryState, Job, Progress, Storage
from .upstream import FailureKind, UpstreamFailure
from .woocommerce import WooCommerceClient
from .woocommerce_models import WooOrder

__all__ = ["DeliveryWorker"]

log = structlog.get_logger("bridge.delivery")

# Longest sleep between looks at the queue when nothing wakes the worker.
_IDLE_POLL_SECONDS = 1.0


class Untrusted(Exception):
    """Cryptum's API does not vouch for the callback: nothing is applied, an admin must look."""


class AwaitingCryptum(Exception):
    """Cryptum's API has not caught up with the callback yet: check again later."""


@dataclass
class _Store:
    config: StoreConfig
    client: WooCommerceClient
    cryptum: CryptumClient | None
    in_flight: int = 0
    # The last configuration error WooCommerce reported, until a request succeeds.
    config_problem: str | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def payment_facts(job: Job) -> PaymentFacts:
    """What the stored callback says about the payment."""
    try:
        callback = parse_callback(job.payload)
    except InvalidPayload:
        # Stored events were validated on arrival; a payload that no longer
        # parses (say, purged of personal data) still has its indexed fields.
        return PaymentFacts(status=job.status, cryptum_order_id=job.cryptum_order_id)
    return PaymentFacts(
        status=job.status,
        cryptum_order_id=job.cryptum_order_id,
        transactions=tuple((t.protocol, t.hash) for t in callback.transactions or ()),
        message=callback.message,
    )


class DeliveryWorker:
    """Claims due deliveries and works them, until stopped."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        clients: dict[str, WooCommerceClient],
        cryptum_clients: dict[str, CryptumClient] | None = None,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = config.delivery
        self._reconcile = config.reconcile
        self._metrics = metrics or Metrics([store.name for store in config.stores])
        self._storage = storage
        cryptum_clients = cryptum_clients or {}
        self._stores = {
            store.name: _Store(store, clients[store.name], cryptum_clients.get(store.name))
            for store in config.stores
        }
        self._clock = clock
        self._jitter = jitter
        self.loop = BackgroundLoop("delivery", self._step, failed_event="delivery.queue_error")
        # A job holds at most four requests, each bounded by the timeout.
        self._lease_seconds = 4 * self._settings.timeout_seconds + 30

    def reconfigure(
        self,
        config: Config,
        clients: dict[str, WooCommerceClient],
        cryptum_clients: dict[str, CryptumClient],
    ) -> None:
        """Take new stores, credentials and delivery settings; running deliveries finish as begun.

        A store that stays keeps its object, so its count of running
        deliveries, and with it the concurrency limit, stays right.
        """
        self._settings = config.delivery
        self._reconcile = config.reconcile
        stores = {}
        for store_config in config.stores:
            store = self._stores.get(store_config.name)
            if store is None:
                store = _Store(store_config, clients[store_config.name], None)
            store.config = store_config
            store.client = clients[store_config.name]
            store.cryptum = cryptum_clients.get(store_config.name)
            store.config_problem = None
            stores[store_config.name] = store
        self._stores = stores
        self.wake()

    async def start(self, *, run_loop: bool = True) -> None:
        """Free the leases a stopped process left, then work the queue until stopped.

        `run_loop=False` leaves the queue to `run_due`, for a caller that
        drives time itself (a virtual clock in tests).
        """
        released = await self._storage.release_leases()
        if released:
            log.info("delivery.leases_released", count=released)
        if run_loop:
            self.loop.start()

    async def run_due(self) -> int:
        """Work every delivery due now to its end (done, retry later, dead); returns how many."""
        worked = 0
        while True:
            running = {task for store in self._stores.values() for task in store.tasks}
            started = await self._claim_and_start()
            worked += started
            running |= {task for store in self._stores.values() for task in store.tasks}
            if not running:
                return worked
            await asyncio.gather(*running)

    def wake(self) -> None:
        """New work may be due: look at the queue now rather than at the next poll."""
        self.loop.wake()

    def problems(self) -> list[str]:
        """The stores whose shop refuses the bridge's configuration, for `/readyz`."""
        found = [
            f"store {name}: {store.config_problem}"
            for name, store in self._stores.items()
            if store.config_problem is not None
        ]
        return found

    async def stop(self, *, timeout: float) -> None:
        """Claim nothing more; give running deliveries `timeout` seconds, then cancel them."""
        await self.loop.stop(timeout=timeout)
        running = [task for store in self._stores.values() for task in store.tasks]
        if running:
            _, unfinished = await asyncio.wait(running, timeout=timeout)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def _step(self) -> float:
        """Start what is due; how long until the queue is worth another look."""
        await self._claim_and_start()
        if self._has_free_slot():
            return await self._idle_timeout()
        # A finishing delivery wakes the loop; asking the queue when work is
        # due would only add queries beside the ingest path.
        return _IDLE_POLL_SECONDS

    async def _claim_and_start(self) -> int:
        now = self._clock()
        started = 0
        for store in self._stores.values():
            free = self._settings.concurrency - store.in_flight
            jobs = await self._storage.claim(
                store.config.name, free, now=now, lease_seconds=self._lease_seconds
            )
            for job in jobs:
                store.in_flight += 1
                task = asyncio.create_task(self._deliver(job, store))
                store.tasks.add(task)
                task.add_done_callback(store.tasks.discard)
                started += 1
        return started

    def _has_free_slot(self) -> bool:
        return any(s.in_flight < self._settings.concurrency for s in self._stores.values())

    async def _idle_timeout(self) -> float:
        due = await self._storage.next_due()
        now = self._clock()
        if due is None or due <= now:
            # Nothing queued, or due work waiting for a free slot, which a
            # finishing delivery announces with `wake`.
            return _IDLE_POLL_SECONDS
        return min(due - now, _IDLE_POLL_SECONDS)

    async def _deliver(self, job: Job, store: _Store) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            store=job.store,
            delivery_id=job.delivery_id,
            event_id=job.event_id,
            woo_order_id=job.woo_order_id,
            cryptum_order_id=job.cryptum_order_id,
        )
        started = time.perf_counter()
        try:
            await self._run_stages(job, store)
            store.config_problem = None
        except UpstreamFailure as failure:
            self._metrics.upstream_errors.labels(failure.service, failure.kind.value).inc()
            await self._handle_failure(job, store, failure)
        except AwaitingCryptum as lag:
            await self._await_cryptum(job, str(lag))
        except Untrusted as problem:
            # A forged or misrouted callback that passed the signature check,
            # or a leaked webhook secret: worth an admin's attention.
            log.error("security.callback_not_confirmed", reason=str(problem))
            await self._dead(job, str(problem))
        except Exception:
            # A bug, not WooCommerce: keep the delivery and retry it later.
            log.exception("delivery.crashed")
            await self._handle_failure(
                job, store, UpstreamFailure(FailureKind.TRANSIENT, "internal error, see logs")
            )
        finally:
            self._metrics.attempt_seconds.labels(job.store).observe(time.perf_counter() - started)
            store.in_flight -= 1
            self.wake()

    async def _run_stages(self, job: Job, store: _Store) -> None:
        client = store.client
        plan = Plan.from_json(job.decision) if job.decision else None
        order: WooOrder | None = None

        if job.progress is Progress.ACTING and plan is not None:
            # An earlier run fixed this plan and may have acted on it before it
            # stopped (a lost answer, a crash): finish it rather than decide
            # again on an order the bridge itself changed.
            order = await client.get_order(job.woo_order_id)
            if is_applied(plan, order):
                if plan.note is not None and not await self._note_posted(job, client):
                    await client.add_note(job.woo_order_id, plan.note)
                await self._finish(job, plan, order)
                return
        elif await self._skip_if_applied(job, job.status):
            return  # spares asking Cryptum about a status already applied

        payment = await self._confirm(job, store)  # stage: ask Cryptum
        if payment.status != job.status and await self._skip_if_applied(job, payment.status):
            return
        if order is None:
            order = await client.get_order(job.woo_order_id)  # stage: read
        plan = plan_delivery(  # stage: decide
            payment,
            order,
            gateway=store.config.payment_method,
            rules=store.config.rules.as_status_rules(),
            marker=note_marker(job.delivery_id, job.generation),
        )
        if plan.changes is not None or plan.note is not None:
            # Saved before the first side effect: a retry resumes this plan.
            await self._storage.save_progress(
                job.delivery_id, Progress.ACTING, plan.to_json(), now=self._clock()
            )
        if plan.changes is not None:
            await client.update_order(job.woo_order_id, plan.changes)  # stage: update
        if plan.note is not None:
            await client.add_note(job.woo_order_id, plan.note)  # stage: note once
        await self._finish(job, plan, order)

    async def _skip_if_applied(self, job: Job, status: str) -> bool:
        """End the delivery as skipped if another one already applied `status` of this payment."""
        earlier = await self._storage.applied_by(job.store, job.cryptum_order_id, status)
        if earlier is None or earlier == job.delivery_id:
            # A delivery run again by an admin decides anew; the rules see
            # whatever it did the first time on the order itself.
            return False
        reason = f"{status} already applied by delivery {earlier}"
        await self._storage.finish(
            job.delivery_id, DeliveryState.SKIPPED, reason, now=self._clock()
        )
        self._metrics.deliveries.labels(job.store, DeliveryState.SKIPPED).inc()
        log.info("delivery.skipped", reason=reason)
        return True

    async def _note_posted(self, job: Job, client: WooCommerceClient) -> bool:
        """Whether this run's note is among the order's notes already."""
        marker = note_marker(job.delivery_id, job.generation)
        return any(marker in note.note for note in await client.list_notes(job.woo_order_id))

    async def _confirm(self, job: Job, store: _Store) -> PaymentFacts:
        """The payment as Cryptum's API tells it, for a store with an API key.

        Without a key, the signed callback is all there is; a callback that
        was accepted unsigned is then never applied, whatever the config says
        now. With a key, the API decides: the order must belong to this store
        and this WooCommerce order, and its status, not the callback's, is
        acted on once `confirmation.judge` says so.
        """
        from_callback = payment_facts(job)
        if store.cryptum is None:
            if job.signature_form == "unsigned":
                raise Untrusted(
                    "accepted without a signature, and the store has no Cryptum API key "
                    "to confirm it with: never applied unconfirmed"
                )
            return from_callback
        try:
            api_order = await store.cryptum.get_order(job.cryptum_order_id)
        except UpstreamFailure as failure:
            if failure.kind is FailureKind.ORDER_NOT_FOUND:
                raise Untrusted(f"Cryptum does not know order {job.cryptum_order_id}") from None
            raise
        if api_order.store_id != store.config.cryptum_store_id:
            raise Untrusted("the Cryptum order belongs to another store")
        if api_order.ecommerce_order_id != job.woo_order_id:
            raise Untrusted(
                f"the Cryptum order is for WooCommerce order {api_order.ecommerce_order_id}"
            )
        api_status = api_order.payment_status
        verdict = judge(
            job.status,
            api_status,
            now=self._clock(),
            received_at=job.age_from,
            recheck_seconds=self._settings.confirm_recheck_seconds,
            lookback_seconds=self._reconcile.lookback_hours * 3600,
        )
        disagreement = f"the Cryptum API says {api_status!r} where the callback says {job.status!r}"
        if verdict is Verdict.RECHECK:
            raise UpstreamFailure(FailureKind.TRANSIENT, f"{disagreement}; checking again")
        if verdict is Verdict.AWAIT_API:
            raise AwaitingCryptum(f"{disagreement}; waiting for the API to catch up")
        if verdict is Verdict.GIVE_UP:
            hours = self._reconcile.lookback_hours
            raise Untrusted(f"{disagreement} {hours:g} h after it arrived: nothing applied")
        if api_status != job.status:
            log.warning("delivery.api_disagrees", callback_status=job.status, api_status=api_status)
        transactions = tuple((t.protocol, t.hash) for t in api_order.transactions or ())
        return PaymentFacts(
            status=api_status,
            cryptum_order_id=job.cryptum_order_id,
            transactions=transactions or from_callback.transactions,
            message=from_callback.message,
            expected_total=api_order.order_total,
            expected_currency=api_order.order_currency,
        )

    async def _await_cryptum(self, job: Job, reason: str) -> None:
        """Check a lagging API again: with backoff, yet at least every reconciliation interval.

        Reconciliation would find the payment once the API settles, but it
        leaves an order with a pending delivery to that delivery, so the
        delivery itself must not sleep for longer than reconciliation would.
        """
        now = self._clock()
        delay = min(
            retry_delay(
                job.attempts,
                initial=self._settings.backoff_initial_seconds,
                maximum=self._settings.backoff_max_seconds,
                random=self._jitter,
            ),
            self._reconcile.interval_seconds,
        )
        # The last look is at the end of the lookback, when the verdict is final.
        deadline = job.age_from + self._reconcile.lookback_hours * 3600
        at = min(now + delay, deadline)
        await self._storage.retry_later(job.delivery_id, at=at, error=reason, now=now)
        self._metrics.deliveries.labels(job.store, "retry").inc()
        log.info("delivery.awaiting_cryptum", reason=reason, delay_seconds=round(at - now, 3))

    async def _finish(self, job: Job, plan: Plan, order: WooOrder) -> None:
        if plan.give_up is not None:
            await self._dead(job, plan.give_up)
            return
        changed = plan.changes is not None or plan.note is not None
        outcome = f"{plan.kind}: {plan.reason}"
        state = DeliveryState.DONE if changed else DeliveryState.SKIPPED
        # Decided on the live order and carried out: this status is applied,
        # even where the rules found nothing to change.
        applied = plan.payment_status or job.status
        await self._storage.finish(
            job.delivery_id, state, outcome, now=self._clock(), applied_status=applied
        )
        self._metrics.deliveries.labels(job.store, state).inc()
        if changed:
            log.info(
                "delivery.applied",
                action=plan.kind,
                target_status=plan.target_status,
                reason=plan.reason,
                attempts=job.attempts,
            )
        else:
            log.info("delivery.skipped", reason=plan.reason, order_status=order.status)

    async def _handle_failure(self, job: Job, store: _Store, failure: UpstreamFailure) -> None:
        if failure.kind in (FailureKind.ORDER_NOT_FOUND, FailureKind.REJECTED):
            await self._dead(job, failure.reason)
            return
        now = self._clock()
        if failure.kind is FailureKind.CONFIG:
            store.config_problem = failure.reason
            log.error("delivery.config_error", reason=failure.reason, status=failure.status)
            delay = self._settings.backoff_max_seconds
        else:
            if failure.retry_after is not None and (
                failure.retry_after > self._settings.backoff_max_seconds
            ):
                # A server asking for days must not dead-letter the payment now.
                log.warning(
                    "delivery.retry_after_capped",
                    retry_after_seconds=round(failure.retry_after, 3),
                    capped_seconds=self._settings.backoff_max_seconds,
                )
            delay = retry_delay(
                job.attempts,
                initial=self._settings.backoff_initial_seconds,
                maximum=self._settings.backoff_max_seconds,
                retry_after=failure.retry_after,
                random=self._jitter,
            )
        deadline = job.age_from + self._settings.max_age_hours * 3600
        if now + delay > deadline:
            hours = self._settings.max_age_hours
            await self._dead(job, f"gave up after {hours:g} h: {failure.reason}")
            return
        await self._storage.retry_later(
            job.delivery_id, at=now + delay, error=failure.reason, now=now
        )
        outcome = "config_error" if failure.kind is FailureKind.CONFIG else "retry"
        self._metrics.deliveries.labels(job.store, outcome).inc()
        log.warning(
            "delivery.retry",
            reason=failure.reason,
            status=failure.status,
            attempts=job.attempts,
            delay_seconds=round(delay, 3),
        )

    async def _dead(self, job: Job, reason: str) -> None:
        await self._storage.finish(job.delivery_id, DeliveryState.DEAD, reason, now=self._clock())
        self._metrics.deliveries.labels(job.store, DeliveryState.DEAD).inc()
        log.error("delivery.dead", reason=reason, attempts=job.attempts)
