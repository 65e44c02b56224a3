"""`cryptum-bridge serve` as a real process: crash safety and orderly shutdown."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from daemon import Daemon
from support import callback_body, config_document, signed_headers, to_toml, write_config

pytestmark = pytest.mark.slow


def stored_cryptum_orders(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT cryptum_order_id FROM events")}


async def test_every_acknowledged_callback_survives_kill_9(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    acknowledged: set[str] = set()
    for round_number in range(3):
        daemon = await Daemon.started(config_path)
        url = daemon.url
        bodies = {
            f"r{round_number}-{n}": callback_body(order_id=f"r{round_number}-{n}")
            for n in range(30)
        }
        first_ack = asyncio.Event()

        async def post(
            session: aiohttp.ClientSession, order: str, body: bytes, url: str, acked: asyncio.Event
        ) -> None:
            try:
                async with session.post(
                    f"{url}/callbacks/cryptum", data=body, headers=signed_headers(body)
                ) as response:
                    if response.status == 200:
                        acknowledged.add(order)
                        acked.set()
            except aiohttp.ClientError:
                pass  # cut off by the kill: not acknowledged, so Cryptum would retry

        async with aiohttp.ClientSession() as session:
            tasks = [
                asyncio.create_task(post(session, o, b, url, first_ack)) for o, b in bodies.items()
            ]
            await asyncio.wait_for(first_ack.wait(), timeout=10)
            daemon.signal(signal.SIGKILL)  # right after a 200, with others in flight
            await asyncio.gather(*tasks)
        assert await daemon.finished() == -signal.SIGKILL

    assert acknowledged
    database = tmp_path / "state" / "bridge.sqlite3"
    assert acknowledged <= stored_cryptum_orders(database)

    # After the crashes the daemon starts cleanly and recognises the old events.
    daemon = await Daemon.started(config_path)
    try:
        order = sorted(acknowledged)[0]
        body = callback_body(order_id=order)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{daemon.url}/callbacks/cryptum", data=body, headers=signed_headers(body)
            ) as response,
        ):
            assert response.status == 200
    finally:
        assert await daemon.stopped() == 0


async def test_sigterm_finishes_in_flight_requests_then_exits_0(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    text = config_path.read_text().replace("busy_timeout_ms = 200", "busy_timeout_ms = 10000")
    config_path.write_text(text)
    daemon = await Daemon.started(config_path)
    database = tmp_path / "state" / "bridge.sqlite3"
    # Another process holds the write lock, so the callback is in flight,
    # waiting for its commit, when SIGTERM arrives.
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    body = callback_body(order_id="in-flight")
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(
            session.post(f"{daemon.url}/callbacks/cryptum", data=body, headers=signed_headers(body))
        )
        await asyncio.sleep(0.5)
        daemon.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        with pytest.raises(aiohttp.ClientError):  # no longer accepting new requests
            await session.get(f"{daemon.url}/healthz")
        assert not request.done()
        blocker.execute("ROLLBACK")
        blocker.close()
        response = await asyncio.wait_for(request, timeout=10)
        assert response.status == 200
        assert (await response.json())["status"] == "accepted"

    assert await daemon.finished() == 0
    events = [event["event"] for event in daemon.events()]
    assert events.index("server.stopping") < events.index("callback.accepted")
    assert events[-1] == "server.stopped"
    assert "in-flight" in stored_cryptum_orders(database)


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[stores]]\nname = "main"\n')
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "stores[0].cryptum_store_id: Field required" in result.stderr


def test_unusable_storage_exits_1_with_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config_path = tmp_path / "config.toml"
    document = config_document(blocker / "bridge.sqlite3")
    config_path.write_text(to_toml(document))
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "serve", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "server.storage_failed" in result.stdout
    assert "cannot create" in result.stdout


def test_a_second_serve_on_the_same_database_is_refused(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    first = Daemon(config_path)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bridge", "serve", "--config", str(config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1
        assert "another cryptum-bridge serve is using this database" in result.stdout
    finally:
        assert first.stop() == 0


def test_a_short_webhook_secret_is_warned_of_at_start(tmp_path: Path) -> None:
    document = config_document(tmp_path / "state" / "bridge.sqlite3")
    document["stores"][1]["webhook_secret"] = "tiny-Zq7"
    config = tmp_path / "config.toml"
    config.write_text(to_toml(document))
    daemon = Daemon(config)
    assert daemon.stop() == 0
    warnings = [e for e in daemon.events() if e["event"] == "config.warning"]
    assert [w["problem"] for w in warnings] == [
        "stores[1].webhook_secret: shorter than 16 characters; use a long random secret"
    ]
    assert warnings[0]["level"] == "warning"
    assert not any("Zq7" in line for line in daemon.lines)
