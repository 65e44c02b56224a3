"""The delivery worker: claims due deliveries and runs each attempt, until stopped.

Each attempt runs the stages of `delivery_stages` and ends in one outcome
(`delivery_outcome`), which `_record` writes in one place: the queue row,
the metrics, the log line. Deliveries of one order run one at a time in
arrival order (the storage sees to that); different orders run in parallel,
up to `delivery.concurrency` per store.

A delivery acts on the status Cryptum's API reports, once the API has caught
up with the callback (`confirmation`), and records that status as applied
in the statement that finishes it. A status already applied to the Cryptum
order, by this delivery's event or any other, is not applied again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from . import log_context
from .background import BackgroundLoop
from .config import Config, StoreConfig
from .confirmation import AwaitingCryptum, Recheck, Untrusted
from .cryptum import CryptumClient
from .delivery_outcome import (
    Applied,
    Dead,
    Outcome,
    RetryAt,
    RetryKind,
    RetryPolicy,
    Skipped,
    after_failure,
    awaiting_cryptum,
)
from .delivery_stages import Attempt, attempt_delivery
from .metrics import Metrics
from .storage import DeliveryState, Job, Storage
from .upstream import FailureKind, UpstreamFailure
from .woocommerce import WooCommerceClient

__all__ = ["DeliveryWorker"]

log = structlog.get_logger("bridge.delivery")

# Longest sleep between looks at the queue when nothing wakes the worker.
_IDLE_POLL_SECONDS = 1.0


@dataclass
class _Store:
    config: StoreConfig
    client: WooCommerceClient
    cryptum: CryptumClient | None
    in_flight: int = 0
    # The last configuration error the shop or the API reported, until an attempt succeeds.
    config_problem: str | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


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
        log_context.clear()
        log_context.bind(
            store=job.store,
            delivery_id=job.delivery_id,
            event_id=job.event_id,
            woo_order_id=job.woo_order_id,
            cryptum_order_id=job.cryptum_order_id,
        )
        started = time.perf_counter()
        try:
            outcome = await self._attempt(job, store)
            await self._record(job, outcome)
        finally:
            self._metrics.attempt_seconds.labels(job.store).observe(time.perf_counter() - started)
            store.in_flight -= 1
            self.wake()

    async def _attempt(self, job: Job, store: _Store) -> Outcome:
        """Run the stages; what went wrong becomes the outcome it calls for."""
        attempt = Attempt(
            job=job,
            store=store.config,
            shop=store.client,
            cryptum=store.cryptum,
            storage=self._storage,
            clock=self._clock,
            recheck_seconds=self._settings.confirm_recheck_seconds,
            lookback_seconds=self._reconcile.lookback_hours * 3600,
        )
        try:
            outcome = await attempt_delivery(attempt)
        except UpstreamFailure as failure:
            self._metrics.upstream_errors.labels(failure.service, failure.kind.value).inc()
            if failure.kind is FailureKind.CONFIG:
                store.config_problem = failure.reason
            return self._after_failure(job, failure)
        except Recheck as disagreement:
            return self._after_failure(
                job, UpstreamFailure(FailureKind.TRANSIENT, str(disagreement))
            )
        except AwaitingCryptum as lag:
            return awaiting_cryptum(
                str(lag),
                attempts=job.attempts,
                age_from=job.age_from,
                now=self._clock(),
                policy=self._policy(),
                jitter=self._jitter,
            )
        except Untrusted as problem:
            return Dead(str(problem), untrusted=True)
        except Exception:
            # A bug, not WooCommerce: keep the delivery and retry it later.
            log.exception("delivery.crashed")
            internal = UpstreamFailure(FailureKind.TRANSIENT, "internal error, see logs")
            return self._after_failure(job, internal)
        store.config_problem = None
        return outcome

    def _after_failure(self, job: Job, failure: UpstreamFailure) -> RetryAt | Dead:
        return after_failure(
            failure,
            attempts=job.attempts,
            age_from=job.age_from,
            now=self._clock(),
            policy=self._policy(),
            jitter=self._jitter,
        )

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(
            initial_seconds=self._settings.backoff_initial_seconds,
            max_seconds=self._settings.backoff_max_seconds,
            max_age_seconds=self._settings.max_age_hours * 3600,
            recheck_lag_seconds=self._reconcile.interval_seconds,
            lookback_seconds=self._reconcile.lookback_hours * 3600,
        )

    async def _record(self, job: Job, outcome: Outcome) -> None:
        """The one place an outcome is written: the queue row, the metrics, the log line."""
        now = self._clock()
        if isinstance(outcome, RetryAt):
            await self._storage.retry_later(
                job.delivery_id, at=outcome.at, error=outcome.error, now=now
            )
        else:
            state, summary, applied = _finished(outcome)
            await self._storage.finish(
                job.delivery_id, state, summary, now=now, applied_status=applied
            )
        self._metrics.deliveries.labels(job.store, _metric_outcome(outcome)).inc()
        _log(job, outcome)


def _finished(outcome: Applied | Skipped | Dead) -> tuple[DeliveryState, str, str | None]:
    """The finished state, the outcome text and the applied status of a delivery's row."""
    if isinstance(outcome, Applied):
        return DeliveryState.DONE, outcome.summary, outcome.status
    if isinstance(outcome, Skipped):
        return DeliveryState.SKIPPED, outcome.summary, outcome.status
    return DeliveryState.DEAD, outcome.reason, None


def _metric_outcome(outcome: Outcome) -> str:
    if isinstance(outcome, RetryAt):
        return "config_error" if outcome.kind is RetryKind.CONFIG_ERROR else "retry"
    return _finished(outcome)[0].value


def _log(job: Job, outcome: Outcome) -> None:
    if isinstance(outcome, Applied):
        log.info(
            "delivery.applied",
            action=outcome.action,
            target_status=outcome.target_status,
            reason=outcome.reason,
            attempts=job.attempts,
        )
    elif isinstance(outcome, Skipped):
        log.info("delivery.skipped", reason=outcome.reason, order_status=outcome.order_status)
    elif isinstance(outcome, Dead):
        if outcome.untrusted:
            # A forged or misrouted callback that passed the signature check,
            # or a leaked webhook secret: worth an admin's attention.
            log.error("security.callback_not_confirmed", reason=outcome.reason)
        log.error("delivery.dead", reason=outcome.reason, attempts=job.attempts)
    else:
        _log_retry(job, outcome)


def _log_retry(job: Job, retry: RetryAt) -> None:
    delay = round(retry.delay, 3)
    if retry.kind is RetryKind.AWAITING_CRYPTUM:
        log.info("delivery.awaiting_cryptum", reason=retry.error, delay_seconds=delay)
        return
    if retry.kind is RetryKind.CONFIG_ERROR:
        log.error("delivery.config_error", reason=retry.error, status=retry.status)
    if retry.capped_retry_after is not None:
        log.warning(
            "delivery.retry_after_capped",
            retry_after_seconds=round(retry.capped_retry_after, 3),
            capped_seconds=round(retry.delay, 3),
        )
    log.warning(
        "delivery.retry",
        reason=retry.error,
        status=retry.status,
        attempts=job.attempts,
        delay_seconds=delay,
    )
