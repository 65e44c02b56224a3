"""`cryptum-bridge serve`: run the app until SIGTERM or SIGINT, then drain and exit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import structlog
from aiohttp import web

from .app import create_app
from .config import Config
from .storage import StorageError

__all__ = ["serve"]

log = structlog.get_logger("bridge.server")


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


async def serve(config: Config) -> int:
    """Serve until told to stop; returns the process exit code."""
    app = create_app(config)
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=config.server.shutdown_timeout_seconds
    )
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

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "server.started",
        listen=[_describe(address) for address in runner.addresses],
        database=str(config.storage.database_path),
        stores=[store.name for store in config.stores],
        pid=os.getpid(),
    )
    await stop.wait()
    log.info("server.stopping")
    # Stops accepting, lets in-flight requests finish (up to the shutdown
    # timeout), then runs the cleanup contexts, which close the database.
    await runner.cleanup()
    log.info("server.stopped")
    return 0
