"""SIGTERM ends a real `serve` within 10 s even while the shop and Cryptum's API hang."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon import Daemon
from support import MAIN_STORE_ID, callback_body, config_document, signed_headers, to_toml

pytestmark = pytest.mark.slow


class HangingServer:
    """Accepts connections and never answers: an upstream that hangs, not one that refuses."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self._listener.accept()
                self.held.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_sigterm_ends_within_10_s_while_upstreams_hang(
    tmp_path: Path, hanging: HangingServer
) -> None:
    upstream = f"http://127.0.0.1:{hanging.port}"
    database = tmp_path / "state" / "bridge.sqlite3"
    document = config_document(
        database,
        # Long request timeouts: only cancelling them can end the stop in time.
        delivery={"timeout_seconds": 120},
        reconcile={"interval_seconds": 1},
    )
    store = document["stores"][0]
    store["cryptum_api_key"] = "cryptum-api-key-hanging"
    store["cryptum_api_url"] = upstream + "/plugins"
    store["woocommerce"]["url"] = upstream
    document["stores"] = [store]
    config = tmp_path / "config.toml"
    config.write_text(to_toml(document))

    daemon = Daemon(config)
    try:
        body = callback_body(woo_order_id="77", store_id=MAIN_STORE_ID)
        request = urllib.request.Request(
            f"{daemon.url}/callbacks/cryptum", data=body, headers=signed_headers(body)
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        # Reconciliation's listing and the delivery's read of the order, both hanging.
        wait_for(lambda: len(hanging.held) >= 2)
        started = time.monotonic()
        daemon.signal(15)
        code = daemon.finish(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        if daemon.process.poll() is None:
            daemon.stop()
    assert code == 0
    assert elapsed < 10, elapsed
    # The acknowledged callback is stored and its delivery waits for the next start.
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT e.woo_order_id, d.state FROM events e JOIN deliveries d ON d.event_id = e.id"
        ).fetchall()
    assert rows == [("77", "pending")]
    stopped = [e["event"] for e in daemon.events()]
    assert "server.stopped" in stopped
