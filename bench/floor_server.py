"""The floor: the least a callback must cost in one Python process, for comparison.

    python bench/floor_server.py PORT DATABASE [full|commit-only]

Not the bridge: an aiohttp handler on uvloop doing only what no callback
can skip, with the bridge's own pure functions. It reads the body, parses
and validates it (`parse_callback`), makes its canonical form, checks the
HMAC (`verify`), hashes the key, and waits until the callback is committed
to SQLite (WAL, `synchronous=FULL`) by one writer thread: one single-step
INSERT per batch, as many callbacks in a batch as arrived during the
previous commit, with the next batch already queued to the thread while
one commits (as the bridge does). Then it writes one JSON log line and
answers 200. No middleware, no request id, no metrics, no deliveries, no
dedupe beyond the unique key, no config. What it reaches under
`bench/ingest.py --generator wrk --floor` bounds what any design of the
bridge in one process can reach on the machine; the gap between it and the
bare handler is the cost of the work itself.

`commit-only` leaves out everything but the durable commit: it reads the
body, stores it with the same writer and answers, with no parsing,
signature, hash or log line. It is the bare handler plus nothing but the
rule that a 2xx waits for the fsync covering it, so its rate bounds any
server that keeps that rule on this machine, whatever else it does.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import sys
import threading
import time

import orjson
import uvloop
from aiohttp import web

from bridge.payload import event_key, parse_callback
from bridge.signature import json_canonical, verify

SECRET = "whsec_bench_0123456789"  # bench/ingest.py signs with it
Row = tuple[str, str, bytes | None, bytes, float]
Waiter = tuple[asyncio.Future[int], Row]
BATCHES_IN_FLIGHT = 2  # as bridge/storage/sqlite.py


class Writer:
    """One thread, one connection: each batch one INSERT, committed by itself (autocommit)."""

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.execute("PRAGMA synchronous = FULL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, order_id TEXT,"
            " status TEXT, key BLOB, payload BLOB, received_at REAL, UNIQUE (order_id, key))"
        )
        self._loop = loop
        self._batches: queue.SimpleQueue[list[Waiter]] = queue.SimpleQueue()
        self._next: list[Waiter] = []
        self._in_flight = 0
        threading.Thread(target=self._run, daemon=True).start()

    async def store(self, row: Row) -> int:
        future = self._loop.create_future()
        self._next.append((future, row))
        if self._in_flight < BATCHES_IN_FLIGHT:
            self._hand_over()
        return await future

    def _hand_over(self) -> None:
        self._in_flight += 1
        self._batches.put(self._next)
        self._next = []

    def _run(self) -> None:
        while True:
            batch = self._batches.get()
            rows = [row for _, row in batch]
            cursor = self._connection.execute(
                "INSERT INTO events (order_id, status, key, payload, received_at) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?)"] * len(rows))
                + " ON CONFLICT DO NOTHING",
                [value for row in rows for value in row],
            )
            first = (cursor.lastrowid or 0) - len(rows) + 1
            self._loop.call_soon_threadsafe(self._done, batch, first)

    def _done(self, batch: list[Waiter], first: int) -> None:
        for index, (future, _) in enumerate(batch):
            future.set_result(first + index)
        self._in_flight -= 1
        if self._next:
            self._hand_over()


async def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "full"
    if mode not in ("full", "commit-only"):
        raise SystemExit("usage: floor_server.py PORT DATABASE [full|commit-only]")
    writer = Writer(path, asyncio.get_running_loop())
    out = sys.stdout.buffer

    async def accept(request: web.Request) -> web.Response:
        body = await request.read()
        payload = parse_callback(body)
        canonical = json_canonical(body)
        form = verify(body, request.headers.get("X-Webhook-Signature"), SECRET, json_form=canonical)
        event_id = await writer.store(
            (payload.order_id, payload.status, event_key(canonical), body, time.time())
        )
        line = {"event": "callback.accepted", "event_id": event_id, "form": form.value}
        out.write(orjson.dumps(line) + b"\n")
        answer = b'{"status": "accepted", "event_id": %d}' % event_id
        return web.Response(body=answer, content_type="application/json", charset="utf-8")

    async def commit_only(request: web.Request) -> web.Response:
        body = await request.read()
        # No key: NULLs never collide under the UNIQUE constraint, so every row is new.
        event_id = await writer.store(("", "", None, body, time.time()))
        answer = b'{"status": "accepted", "event_id": %d}' % event_id
        return web.Response(body=answer, content_type="application/json", charset="utf-8")

    app = web.Application()
    app.router.add_post("/callbacks/cryptum", accept if mode == "full" else commit_only)
    app.router.add_get("/healthz", lambda request: web.json_response({"status": "ok"}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.setswitchinterval(0.0005)  # as serve sets it
    uvloop.run(main())
