"""The baseline: an aiohttp handler that reads the body and answers JSON, nothing more.

    python bench/bare_server.py PORT [asyncio|uvloop]

On asyncio's own event loop by default, as aiohttp runs out of the box; on
uvloop, the loop `serve` runs on, to show what part of a ratio the loop is.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "accepted", "event_id": 0})


def main() -> None:
    app = web.Application()
    app.router.add_post("/callbacks/cryptum", accept)
    app.router.add_get("/healthz", lambda request: web.json_response({"status": "ok"}))
    loop = None
    if sys.argv[2:] == ["uvloop"]:
        import uvloop

        loop = uvloop.new_event_loop()
    elif sys.argv[2:] not in ([], ["asyncio"]):
        raise SystemExit("usage: bare_server.py PORT [asyncio|uvloop]")
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        loop=loop or asyncio.new_event_loop(),
    )


if __name__ == "__main__":
    main()
