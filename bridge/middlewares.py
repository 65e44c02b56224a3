"""Request ids, and the one place where errors become HTTP answers."""

from __future__ import annotations

import re
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import HTTPError
from .state import REQUEST_ID

__all__ = ["error_answers", "request_context"]

log = structlog.get_logger("bridge.http")

# An id offered by a proxy is kept only if it cannot disturb a log line.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id, bind it to the logs and echo it in `X-Request-Id`."""
    offered = request.headers.get("X-Request-Id", "")
    request_id = offered if _SAFE_REQUEST_ID.match(offered) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exception:
        exception.headers["X-Request-Id"] = request_id
        raise
    response.headers["X-Request-Id"] = request_id
    return response


@web.middleware
async def error_answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer `HTTPError`s with their JSON body; anything unexpected is a logged 500."""
    try:
        return await handler(request)
    except HTTPError as error:
        return web.json_response(error.body(), status=error.status)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("http.unhandled_error", path=request.path, method=request.method)
        return web.json_response({"error": "internal"}, status=500)
