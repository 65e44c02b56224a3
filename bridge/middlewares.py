"""Request ids, and the one place where errors become HTTP answers."""

from __future__ import annotations

import itertools
import os
import re
from http import HTTPStatus

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from . import log_context
from .app_keys import REQUEST_ID
from .errors import HTTPError

__all__ = ["request_context"]

log = structlog.get_logger("bridge.http")

# An id offered by a proxy is kept only if it cannot disturb a log line.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Ids are a random per-process prefix and a counter: unique across restarts
# and far cheaper than a uuid4 per request.
_ID_PREFIX = os.urandom(6).hex()
_id_counter = itertools.count(1)


# The bridge's own names where they differ from the HTTP reason phrase.
_ERROR_CODES = {413: "payload_too_large"}


def _error_code(status: int) -> str:
    """`not_found` for 404, `method_not_allowed` for 405, and so on."""
    if status in _ERROR_CODES:
        return _ERROR_CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_")
    except ValueError:  # a status no standard names
        return f"http_{status}"


def new_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_id_counter):x}"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id for the logs and `X-Request-Id`, and answer its errors.

    `HTTPError`s become their JSON answer; anything unexpected is a logged 500
    that reveals nothing of the internals.
    """
    offered = request.headers.get("X-Request-Id", "")
    request_id = offered if _SAFE_REQUEST_ID.match(offered) else new_request_id()
    request[REQUEST_ID] = request_id
    # aiohttp runs each request in a task of its own, which starts from a
    # copy of the connection's context: nothing bound while handling one
    # request is seen by the next, so there is nothing to clear.
    log_context.bind(request_id=request_id)
    response: web.StreamResponse
    try:
        response = await handler(request)
    except HTTPError as error:
        response = web.json_response(error.body(), status=error.status, headers=error.headers())
    except web.HTTPException as exception:
        if exception.status < 400:
            exception.headers["X-Request-Id"] = request_id
            raise
        # aiohttp's own refusals (no route, wrong method, a body over its
        # size limit, an unknown Expect): JSON like every other answer.
        response = web.json_response(
            {"error": _error_code(exception.status)}, status=exception.status
        )
        if "Allow" in exception.headers:
            response.headers["Allow"] = exception.headers["Allow"]
    except Exception:
        log.exception("http.unhandled_error", path=request.path, method=request.method)
        response = web.json_response({"error": "internal"}, status=500)
    response.headers["X-Request-Id"] = request_id
    return response
