"""The aiohttp application: routes, middlewares and the resources they share.

On start: the storage (on SQLite with its instance lock), an HTTP client session and the
delivery worker, in that order; on shutdown the worker drains first and the
database closes last.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import structlog
from aiohttp import web

from .app_keys import (
    CONFIG,
    HTTP_SESSION,
    METRICS,
    READINESS,
    RECONCILER,
    RETENTION,
    STORAGE,
    UNSIGNED_LIMITS,
    WORKER,
    LiveConfig,
)
from .callbacks import receive_callback
from .config import Config
from .cryptum import CryptumClient
from .delivery import DeliveryWorker
from .metrics import CONTENT_TYPE, Metrics
from .middlewares import request_context
from .rate_limit import StoreLimits
from .readiness import Readiness
from .reconcile import Reconciler
from .retention import RetentionJob
from .storage import DeliveryState, open_storage
from .systemd_notify import notify
from .woocommerce import WooCommerceClient

__all__ = ["build_clients", "create_app"]

log = structlog.get_logger("bridge.storage")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems = await request.app[READINESS].problems()
    if problems:
        return web.json_response({"status": "unavailable", "reasons": problems}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; the queue figures are read from the database now."""
    registry = request.app[METRICS]
    storage = request.app[STORAGE]
    # Scraped often: count only the open states, not every delivery ever made.
    counts = await storage.delivery_counts((DeliveryState.PENDING, DeliveryState.DEAD))
    registry.set_queue(
        pending=counts.get(DeliveryState.PENDING, 0),
        oldest_pending=await storage.oldest_pending(),
        dead=counts.get(DeliveryState.DEAD, 0),
    )
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/callbacks/cryptum", receive_callback)
    app.router.add_post("/callbacks/cryptum/{store}", receive_callback)
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)
    app.router.add_get("/metrics", metrics)


def build_clients(
    config: Config, session: aiohttp.ClientSession
) -> tuple[dict[str, WooCommerceClient], dict[str, CryptumClient]]:
    """A WooCommerce client per store, and a Cryptum client per store with an API key."""
    timeout = config.delivery.timeout_seconds
    clients = {
        store.name: WooCommerceClient(store.woocommerce, session=session, timeout_seconds=timeout)
        for store in config.stores
    }
    cryptum_clients = {
        store.name: CryptumClient(
            base_url=store.api_base_url,
            api_key=store.cryptum_api_key.get_secret_value(),
            session=session,
            timeout_seconds=timeout,
        )
        for store in config.stores
        if store.cryptum_api_key is not None
    }
    return clients, cryptum_clients


# How long systemd should wait for a start that migrates the database: a
# rebuild of the events table took 14 s per million events on the benchmark
# machine; 30 minutes leaves room for slow disks and very large shops.
MIGRATION_START_TIMEOUT_USEC = 30 * 60 * 1_000_000


def _announce_migration(from_version: int, to_version: int) -> None:
    log.info("storage.migrating", from_version=from_version, to_version=to_version)
    # Killed by systemd's start timeout, the migration would roll back and
    # start over at the next try, for ever: ask for the time it needs.
    notify(
        f"EXTEND_TIMEOUT_USEC={MIGRATION_START_TIMEOUT_USEC}",
        f"STATUS=migrating the database to schema {to_version}",
    )


def _resources(
    config: Config, clock: Callable[[], float], jitter: Callable[[], float], background: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Open, in order, what the app needs, and close it in reverse order."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        storage = await open_storage(
            config.storage, clock=clock, before_migrating=_announce_migration
        )
        try:
            async with aiohttp.ClientSession() as session:
                app[HTTP_SESSION] = session
                clients, cryptum_clients = build_clients(config, session)
                worker = DeliveryWorker(
                    config,
                    storage,
                    clients,
                    cryptum_clients,
                    metrics=app[METRICS],
                    clock=clock,
                    jitter=jitter,
                )
                await worker.start(run_loop=background)
                reconciler = Reconciler(
                    config, storage, cryptum_clients, on_enqueued=worker.wake, clock=clock
                )
                retention = RetentionJob(
                    storage, retention_days=config.storage.retention_days, clock=clock
                )
                if background:
                    reconciler.start()
                    retention.start()
                app[STORAGE] = storage
                app[WORKER] = worker
                app[RECONCILER] = reconciler
                app[RETENTION] = retention
                loops = [
                    worker.loop,
                    reconciler.loop,
                    retention.loop,
                    *storage.background_loops,
                ]
                app[READINESS] = Readiness(storage, worker, loops)
                yield
                # Stopped already when shutdown began (`stop_background_work`);
                # again here for an app that failed before serving.
                await stop_background_work(app)
        finally:
            await storage.close()

    return context


# On shutdown, running deliveries get this long to finish before they are
# cancelled. A cancelled delivery loses nothing: its plan was saved before its
# first side effect and the next start resumes it. Short, so that a stop stays
# within 10 s even while a shop or Cryptum's API hangs.
DELIVERY_GRACE_SECONDS = 5.0


async def stop_background_work(app: web.Application) -> None:
    """Stop retention, reconciliation and the delivery worker, in that order.

    Runs as soon as shutdown begins, alongside the in-flight requests that
    aiohttp lets finish, rather than after them.
    """
    if RETENTION not in app:
        return  # the resources never opened
    await app[RETENTION].stop()
    await app[RECONCILER].stop()
    grace = min(DELIVERY_GRACE_SECONDS, app[CONFIG].current.server.shutdown_timeout_seconds)
    await app[WORKER].stop(timeout=grace)


def create_app(
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    jitter: Callable[[], float] = random.random,
    background: bool = True,
) -> web.Application:
    """Build the bridge's application; the database opens when the app starts.

    `background=False` starts no delivery, reconciliation or retention loop:
    a caller with its own `clock` then drives them (`DeliveryWorker.run_due`,
    `Reconciler.run_once`), as the tests with a virtual clock do.
    """
    # The body limit is enforced in the callback handler with a JSON answer;
    # this is a backstop for any other route.
    app = web.Application(
        middlewares=[request_context],
        client_max_size=config.server.max_body_bytes,
    )
    app[CONFIG] = LiveConfig(config)
    app[METRICS] = Metrics([store.name for store in config.stores])
    app[UNSIGNED_LIMITS] = StoreLimits()
    app.cleanup_ctx.append(_resources(config, clock, jitter, background))
    app.on_shutdown.append(stop_background_work)
    setup_routes(app)
    return app
