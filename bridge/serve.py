"""`cryptum-bridge serve`: run the app until SIGTERM or SIGINT, then drain and exit.

Under systemd (`Type=notify`) it says READY=1 once it listens with the database
open, pings the watchdog from the event loop, and says STOPPING=1 when it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from .app import create_app
from .config import Config
from .reload import reload_config
from .storage import StorageError
from .systemd_notify import notify, watchdog_interval

__all__ = ["run_event_loop", "serve"]

log = structlog.get_logger("bridge.server")

# After answering a request whose body it did not read (413, 408), aiohttp
# keeps reading and discarding for this long before closing, so the client
# is not reset before it reads the answer. aiohttp's 10 s default would let
# a trickling client hold the connection that much longer.
LINGER_SECONDS = 2.0

# SQLite works in aiosqlite's thread. When that thread wakes (a commit batch
# to run, a result to hand back) it must take the GIL from the event loop,
# which under load never idles and so yields it only every switch interval:
# 5 ms by default, a wait added to every commit. 0.5 ms keeps it small.
GIL_SWITCH_INTERVAL_SECONDS = 0.0005

# New container objects between collections of the youngest generation
# (Python's default: 700); see `_tune_garbage_collector`.
YOUNG_COLLECTION_THRESHOLD = 10_000


def run_event_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run the daemon on uvloop, or on asyncio's own loop where uvloop is not installed.

    uvloop does the event loop's work (sockets, timers, callbacks) in C: under
    load a callback costs the loop thread markedly less CPU, and that thread
    is what limits ingest (docs/benchmarks.md). Everything the bridge does
    behaves the same on either loop; the tests run `serve` on uvloop.
    """
    try:
        import uvloop
    except ImportError:  # e.g. a platform uvloop does not support
        return asyncio.run(main)
    return uvloop.run(main)


def _describe(address: object) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"unix:{address}"


async def _start_site(runner: web.AppRunner, config: Config) -> web.BaseSite:
    address = config.server.address
    site: web.BaseSite
    if address.unix_path is not None:
        # A socket left by a killed process would make bind fail.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address.unix_path)
        site = web.UnixSite(runner, address.unix_path)
    else:
        site = web.TCPSite(runner, address.host, address.port)
    await site.start()
    return site


def _tune_garbage_collector() -> None:
    """Spare the cycle collector work that finds nothing, once the daemon has started.

    What exists now (modules, the config, the app) lives as long as the
    process: frozen, no collection looks at it again. It is not collected
    first, which would add tens of milliseconds to the start to free next
    to nothing. And by default the youngest objects are collected after
    every 700 new ones: under load, every few callbacks, though nearly all
    a callback makes is freed by reference counting anyway. Collecting
    after 10,000 saves about 4 % of the event loop's instructions per
    callback, and the peak RSS under load stays what it was
    (docs/benchmarks.md).
    """
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def _tell_systemd(*lines: str) -> None:
    """sd_notify; a failure is logged, never fatal (systemd then times out on its own)."""
    try:
        notify(*lines)
    except OSError as error:
        log.warning("systemd.notify_failed", reason=error.strerror)


async def _ping_watchdog(interval: float) -> None:
    """WATCHDOG=1 from the event loop itself, so a stuck loop stops the pings."""
    while True:
        _tell_systemd("WATCHDOG=1")
        await asyncio.sleep(interval)


def _reload(app: web.Application, config_path: Path) -> None:
    _tell_systemd("RELOADING=1", "STATUS=reloading the config")
    reload_config(app, config_path)
    _tell_systemd("READY=1", "STATUS=config reloaded")


async def serve(config: Config, config_path: Path | None = None) -> int:
    """Serve until told to stop; returns the process exit code.

    With `config_path`, SIGHUP re-reads it (see `reload.py`).
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
    app = create_app(config)
    runner = _runner(app, config)
    try:
        await runner.setup()
    except StorageError as error:
        log.error("server.storage_failed", reason=str(error))
        return 1
    try:
        await _start_site(runner, config)
    except OSError as error:
        log.error("server.listen_failed", listen=config.server.listen, reason=error.strerror)
        await runner.cleanup()
        return 1

    _tune_garbage_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if config_path is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload, app, config_path)
    _announce_start(runner, config)
    interval = watchdog_interval()
    watchdog = asyncio.create_task(_ping_watchdog(interval)) if interval else None

    await stop.wait()
    log.info("server.stopping")
    _tell_systemd("STOPPING=1", "STATUS=draining in-flight requests")
    # Stops accepting, lets in-flight requests finish (up to the shutdown
    # timeout), then runs the cleanup contexts, which close the database.
    # The watchdog keeps pinging meanwhile: the loop is still alive.
    await runner.cleanup()
    if watchdog is not None:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    log.info("server.stopped")
    return 0


def _runner(app: web.Application, config: Config) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=config.server.shutdown_timeout_seconds,
        # aiohttp arms this timer when a connection opens and again after each
        # answer, and closes the connection if no whole request head has
        # arrived by then: the only bound it has on a client that trickles
        # its headers, and on idle keep-alive connections.
        keepalive_timeout=config.server.header_timeout_seconds,
        lingering_time=LINGER_SECONDS,
        # aiohttp would inflate a compressed body before the bridge sees it:
        # a 64 KiB gzip bomb costs megabytes and CPU whatever max_body_bytes
        # says. Callbacks are never compressed; they are refused with 400.
        auto_decompress=False,
    )


def _announce_start(runner: web.AppRunner, config: Config) -> None:
    """Log the start and its config warnings, then tell systemd the bridge is ready."""
    listen = [_describe(address) for address in runner.addresses]
    log.info(
        "server.started",
        listen=listen,
        database=config.storage.describe(),
        stores=[store.name for store in config.stores],
        pid=os.getpid(),
    )
    for warning in config.warnings():
        # The same lines check-config and doctor print: keys, never values.
        log.warning("config.warning", problem=warning)
    # Only now: the listener is bound and the database open (runner.setup()).
    stores = f"{len(config.stores)} store{'s' if len(config.stores) != 1 else ''}"
    _tell_systemd("READY=1", f"STATUS=listening on {', '.join(listen)}, {stores}")
