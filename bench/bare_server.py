"""The baseline: an aiohttp handler that reads the body and answers JSON, nothing more."""

from __future__ import annotations

import sys

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "accepted", "event_id": 0})


def main() -> None:
    app = web.Application()
    app.router.add_post("/callbacks/cryptum", accept)
    app.router.add_get("/healthz", lambda request: web.json_response({"status": "ok"}))
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
