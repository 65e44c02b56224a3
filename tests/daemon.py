"""Run `cryptum-bridge serve` as a real process for tests, pointed at the simulators.

A `Bridge` runs on either storage engine: a SQLite file of its own by default,
or the storage a `StorageConfig` names (a database on the test MariaDB,
`engines.mariadb_settings`). Several `Bridge`s given one MariaDB database are
nodes of one deployment. `rows()` reads what the bridge recorded through
whichever engine it uses, with the same `?` placeholders and dict rows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncmy
from asyncmy.cursors import DictCursor

from bridge.config import StorageConfig
from bridge.delivery_plan import note_marker
from bridge.storage.mysql_connection import connect_options
from bridge_simulators.woocommerce import WooCommerceSimulator

from engines import storage_document
from support import (
    MAIN_STORE_ID,
    SESSION_LOGS,
    callback_body,
    config_document,
    signed_headers,
    to_toml,
)

MARKER = "[cryptum-bridge delivery"


class Daemon:
    """A `cryptum-bridge serve` subprocess; its output joins the session's logs.

    `Daemon(path)` and `stop()` wait by blocking, for sync tests. An async test
    uses `await Daemon.started(path)` and `await stopped()`, which wait without
    blocking the event loop: the simulators the daemon talks to run on it.
    """

    def __init__(
        self, config_path: Path, env: dict[str, str] | None = None, *, wait: bool = True
    ) -> None:
        """`env` adds variables to the process's environment; `wait=False` returns at once."""
        self.config_path = config_path
        self.lines: list[str] = []
        self.url = ""
        self._logs_kept = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--config", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait:
            self._wait_until_started()

    @classmethod
    async def started(
        cls, config_path: Path, env: dict[str, str] | None = None, *, timeout: float = 15.0
    ) -> Daemon:
        """Start a daemon and wait, without blocking the loop, until it listens."""
        daemon = cls(config_path, env, wait=False)
        deadline = time.monotonic() + timeout
        while not daemon._check_started():
            if time.monotonic() > deadline:
                await daemon.finished(timeout=0)
                raise RuntimeError("daemon did not start:\n" + "".join(daemon.lines))
            await asyncio.sleep(0.02)
        return daemon

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def _check_started(self) -> bool:
        """Whether the daemon listens (`url` is then set); raises if it exited instead."""
        for event in self.events():
            if event["event"] == "server.started":
                self.url = f"http://{event['listen'][0]}"
                return True
        if self.process.poll() is not None:
            self._reader.join(timeout=5)
            self._keep_logs()
            raise RuntimeError("daemon exited before it started:\n" + "".join(self.lines))
        return False

    def _wait_until_started(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._check_started():
            if time.monotonic() > deadline:
                self.finish(timeout=0)
                raise RuntimeError("daemon did not start:\n" + "".join(self.lines))
            time.sleep(0.02)

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def finish(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit (killing it if it will not) and keep its logs."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=5)
        self._keep_logs()
        return code

    async def finished(self, timeout: float = 15.0) -> int:
        """`finish`, polling the process instead of blocking the event loop."""
        deadline = time.monotonic() + timeout
        killed = False
        while (code := self.process.poll()) is None:
            if not killed and time.monotonic() > deadline:
                self.process.kill()
                killed = True
            await asyncio.sleep(0.02)
        # The pipe closes with the process; the reader is at most a few lines behind.
        await asyncio.to_thread(self._reader.join, 5)
        self._keep_logs()
        return code

    def stop(self) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.finish()

    async def stopped(self) -> int:
        """`stop`, without blocking the event loop."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return await self.finished()

    def _keep_logs(self) -> None:
        # Once per process, so that the session's log scan sees each line once.
        if not self._logs_kept:
            self._logs_kept = True
            SESSION_LOGS.add("".join(self.lines))


class Bridge:
    """A configured bridge process pointed at the simulated shop.

    `daemon` is the running process; `daemons` every process this bridge
    started, in order (a restart after a kill adds one).
    """

    def __init__(
        self,
        tmp_path: Path,
        shop: WooCommerceSimulator,
        *,
        key: str,
        secret: str,
        store: dict[str, Any] | None = None,
        storage: StorageConfig | None = None,
        **sections: dict[str, Any],
    ) -> None:
        """`store` adds settings to the one store; `storage` names the storage (default: a
        SQLite file under `tmp_path`); `sections` replace top-level tables.
        """
        database = tmp_path / "state" / "bridge.sqlite3"
        self.storage = storage or StorageConfig(path=database)
        document = config_document(database)
        if storage is not None:
            document["storage"] = storage_document(storage)
        document["delivery"] = {
            "timeout_seconds": 2,
            "backoff_initial_seconds": 0.05,
            "backoff_max_seconds": 0.5,
        }
        document.update(sections)
        document["stores"] = [document["stores"][0] | (store or {})]
        document["stores"][0]["woocommerce"] = {
            "url": shop.base_url,
            "consumer_key": key,
            "consumer_secret": secret,
        }
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.config_path = tmp_path / "config.toml"
        self.config_path.write_text(to_toml(document))
        self.daemon: Daemon | None = None
        self.daemons: list[Daemon] = []

    @property
    def database(self) -> Path:
        """The SQLite file (only for a bridge on SQLite)."""
        assert self.storage.engine == "sqlite", "a MySQL storage has no database file"
        return self.storage.database_path

    def start(self) -> Bridge:
        """Start the process, blocking until it listens: for sync tests."""
        self.daemon = Daemon(self.config_path)
        self.daemons.append(self.daemon)
        return self

    async def started(self) -> Bridge:
        """Start the process without blocking the loop the simulated shop runs on."""
        self.daemon = await Daemon.started(self.config_path)
        self.daemons.append(self.daemon)
        return self

    @property
    def url(self) -> str:
        assert self.daemon is not None
        return self.daemon.url

    async def send(self, **fields: Any) -> dict[str, Any]:
        return await self.post(callback_body(store_id=MAIN_STORE_ID, **fields))

    async def post(self, body: bytes) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.url}/callbacks/cryptum", data=body, headers=signed_headers(body)
            ) as response,
        ):
            assert response.status == 200
            answer: dict[str, Any] = await response.json()
            return answer

    def rows(self, query: str, *parameters: Any) -> list[dict[str, Any]]:
        """What the bridge recorded, read from its storage (`?` placeholders on both engines)."""
        if self.storage.engine == "mysql":
            return mysql_rows(self.storage, query, parameters)
        with sqlite3.connect(self.database) as connection:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(query, parameters).fetchall()
        return [dict(row) for row in rows]

    def pending(self) -> int:
        """How many deliveries are still to be finished."""
        (row,) = self.rows("SELECT count(*) AS n FROM deliveries WHERE state = 'pending'")
        return int(row["n"])

    def deliveries(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM deliveries ORDER BY id")

    def event(self, event_id: int) -> dict[str, Any]:
        (found,) = self.rows("SELECT * FROM events WHERE id = ?", event_id)
        return found

    def source_of(self, delivery: dict[str, Any]) -> str:
        """Where the delivery's event came from: `callback` or `reconcile`."""
        return str(self.event(delivery["event_id"])["source"])

    def applied(self) -> list[tuple[str, str, int]]:
        """(Cryptum order, status, delivery) for every payment status the bridge applied."""
        return [
            (row["cryptum_order_id"], row["status"], row["delivery_id"])
            for row in self.rows("SELECT * FROM applied_payments ORDER BY delivery_id")
        ]

    def delivery_of(self, event_id: int) -> dict[str, Any]:
        (found,) = [d for d in self.deliveries() if d["event_id"] == event_id]
        return found

    async def settled(self, event_id: int, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until the event's delivery has finished, and return it."""
        await wait_until(lambda: self.delivery_of(event_id)["state"] != "pending", timeout)
        return self.delivery_of(event_id)

    def stop(self) -> int:
        assert self.daemon is not None
        return self.daemon.stop()

    async def stopped(self) -> int:
        assert self.daemon is not None
        return await self.daemon.stopped()

    def logged(self, name: str, *, every_run: bool = False) -> list[dict[str, Any]]:
        """The running daemon's log lines named `name`; `every_run`: every process's, in order."""
        assert self.daemon is not None
        daemons = self.daemons if every_run else [self.daemon]
        return [event for daemon in daemons for event in daemon.events() if event["event"] == name]


def mysql_rows(
    settings: StorageConfig, query: str, parameters: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """Run `query` (with `?` placeholders) on the MySQL storage `settings` name; rows as dicts.

    A connection of its own, in an event loop of its own on another thread:
    the caller may be a sync test, or an async one whose loop must not be
    re-entered (it blocks for the query, as a `sqlite3` read would).
    """
    # The driver formats with `%`: a literal `%` is doubled, `?` becomes `%s`.
    statement = query.replace("%", "%%").replace("?", "%s")

    async def read() -> list[dict[str, Any]]:
        connection = await asyncmy.connect(**connect_options(settings))
        try:
            async with connection.cursor(DictCursor) as cursor:
                await cursor.execute(statement, tuple(parameters))
                return list(await cursor.fetchall())
        finally:
            await connection.ensure_closed()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, read()).result()


async def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def bridge_notes(shop: WooCommerceSimulator, order_id: int) -> list[str]:
    return [note.note for note in shop.notes(order_id) if MARKER in note.note]


def note_of(shop: WooCommerceSimulator, delivery: dict[str, Any]) -> str:
    """The one note on the delivery's order that carries the delivery's own marker."""
    marker = note_marker(delivery["id"], delivery["generation"])
    (note,) = [n.note for n in shop.notes(int(delivery["woo_order_id"])) if marker in n.note]
    return note


def requests_for(shop: WooCommerceSimulator, order_id: int) -> list[str]:
    prefix = f"/wp-json/wc/v3/orders/{order_id}"
    return [
        request.method
        for request in shop.requests
        if request.path == prefix or request.path.startswith(prefix + "/")
    ]
