"""SIGHUP: a new secret takes effect with no request failing meanwhile."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from daemon import Daemon
from support import (
    SECOND_SECRET,
    SECOND_STORE_ID,
    callback_body,
    config_document,
    signed_headers,
    to_toml,
)

pytestmark = pytest.mark.slow

NEW_SECRET = "whsec_rotated_9c8b7a6d5e4f"


def write(
    path: Path, database: Path, *, second_secret: str = SECOND_SECRET, level: str = "info"
) -> None:
    document = config_document(database)
    document["stores"][1]["webhook_secret"] = second_secret
    document["logging"] = {"format": "json", "level": level}
    path.write_text(to_toml(document))


async def wait_for_event(daemon: Daemon, name: str) -> None:
    for _ in range(200):
        if any(e["event"] == name for e in daemon.events()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {name} logged")


async def test_sighup_applies_a_new_secret_without_failing_a_request(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    database = tmp_path / "state" / "bridge.sqlite3"
    write(config, database)
    daemon = await Daemon.started(config)
    url = f"{daemon.url}/callbacks/cryptum"
    statuses: list[int] = []
    done = asyncio.Event()

    async def keep_sending(session: aiohttp.ClientSession) -> None:
        # The main store's callbacks flow all through the reload.
        while not done.is_set():
            body = callback_body()
            async with session.post(url, data=body, headers=signed_headers(body)) as response:
                statuses.append(response.status)

    try:
        async with aiohttp.ClientSession() as session:
            senders = [asyncio.create_task(keep_sending(session)) for _ in range(4)]
            await asyncio.sleep(0.3)
            write(config, database, second_secret=NEW_SECRET)
            daemon.signal(signal.SIGHUP)
            await wait_for_event(daemon, "server.reloaded")
            await asyncio.sleep(0.3)
            done.set()
            await asyncio.wait_for(asyncio.gather(*senders), timeout=30)
            assert len(statuses) > 20 and set(statuses) == {200}  # not one request failed

            # The second store's secret changed: the new one works, the old one not.
            body = callback_body(store_id=SECOND_STORE_ID)
            for secret, status in ((NEW_SECRET, 200), (SECOND_SECRET, 401)):
                async with session.post(
                    url, data=body, headers=signed_headers(body, secret)
                ) as response:
                    assert response.status == status
    finally:
        assert await daemon.stopped() == 0


async def test_an_invalid_config_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    database = tmp_path / "state" / "bridge.sqlite3"
    write(config, database)
    daemon = await Daemon.started(config)
    try:
        config.write_text("[[stores]]\nname = 'broken'\n")
        daemon.signal(signal.SIGHUP)
        await wait_for_event(daemon, "server.reload_failed")
        (failed,) = [e for e in daemon.events() if e["event"] == "server.reload_failed"]
        assert any("stores[0].cryptum_store_id" in problem for problem in failed["problems"])
        body = callback_body()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{daemon.url}/callbacks/cryptum", data=body, headers=signed_headers(body)
            ) as response,
        ):
            assert response.status == 200
    finally:
        assert await daemon.stopped() == 0


async def test_the_log_level_changes_on_reload(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    database = tmp_path / "state" / "bridge.sqlite3"
    write(config, database, level="info")
    daemon = await Daemon.started(config)
    try:
        write(config, database, level="warning")
        daemon.signal(signal.SIGHUP)
        await wait_for_event(daemon, "server.reloaded")
        body = callback_body()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{daemon.url}/callbacks/cryptum", data=body, headers=signed_headers(body)
            ) as response,
        ):
            assert response.status == 200
        await asyncio.sleep(0.2)
    finally:
        assert await daemon.stopped() == 0
    events = [e["event"] for e in daemon.events()]
    assert "callback.accepted" not in events  # info lines are off after the reload
