"""The aiohttp application: routes, middlewares and the resources they share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from .callbacks import receive_callback
from .config import Config
from .middlewares import request_context
from .readiness import Readiness
from .state import CONFIG, DATABASE, READINESS
from .storage import Database

__all__ = ["create_app"]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems = await request.app[READINESS].problems()
    if problems:
        return web.json_response({"status": "unavailable", "reasons": problems}, status=503)
    return web.json_response({"status": "ready"})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/callbacks/cryptum", receive_callback)
    app.router.add_post("/callbacks/cryptum/{store}", receive_callback)
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)


def _open_database(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    async def database_context(app: web.Application) -> AsyncIterator[None]:
        storage = config.storage
        database = await Database.open(
            storage.database_path,
            busy_timeout_ms=storage.busy_timeout_ms,
            commit_batch_max=storage.commit_batch_max,
        )
        app[DATABASE] = database
        app[READINESS] = Readiness(database)
        yield
        await database.close()

    return database_context


def create_app(config: Config) -> web.Application:
    """Build the bridge's application; the database opens when the app starts."""
    # The body limit is enforced in the callback handler with a JSON answer;
    # this is a backstop for any other route.
    app = web.Application(
        middlewares=[request_context],
        client_max_size=config.server.max_body_bytes,
    )
    app[CONFIG] = config
    app.cleanup_ctx.append(_open_database(config))
    setup_routes(app)
    return app
